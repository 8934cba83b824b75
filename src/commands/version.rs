//! `version`: the version and the commit it was built from.

pub fn run() -> Result<u8, String> {
    super::write_stdout(|out| {
        writeln!(
            out,
            "kubectl-azflux {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            env!("AZFLUX_GIT_COMMIT")
        )
    })?;
    Ok(0)
}
