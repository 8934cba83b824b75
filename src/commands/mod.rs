//! One module per subcommand: each wires gathering, checks and rendering together and returns
//! the exit code, or an error message for exit code 2.

pub mod clusters;
pub mod completion;
pub mod doctor;
pub mod enable;
pub mod explain;
pub mod install;
pub mod version;

use std::io::Write;

/// Writes to stdout; a closed pipe (`| head`) is not an error worth reporting.
/// A machine-readable document as JSON or YAML (`-o json|yaml`).
pub fn write_document(
    out: &mut dyn Write,
    format: crate::cli::OutputFormat,
    doc: &serde_json::Value,
) -> std::io::Result<()> {
    if format == crate::cli::OutputFormat::Yaml {
        let text = serde_saphyr::to_string(doc).map_err(std::io::Error::other)?;
        return out.write_all(text.as_bytes());
    }
    serde_json::to_writer_pretty(&mut *out, doc)?;
    writeln!(out)
}

pub fn write_stdout(
    render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match render(&mut lock).and_then(|()| lock.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write output: {e}"))
        }
        _ => Ok(()),
    }
}
