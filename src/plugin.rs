//! The exec credential plugin, bounded. kube runs the plugin itself and buffers everything it
//! prints, without a limit on size or time; so the kubeconfig handed to kube runs this binary
//! instead (`__credential-plugin`), which runs the real plugin with the same arguments,
//! environment (`KUBERNETES_EXEC_INFO` included) and standard input, passes its standard error
//! on, and stops it, with what it started, once it prints more than [`MAX_STDOUT`] or runs
//! past `--request-timeout`.
//!
//! The exec protocol: <https://github.com/kubernetes/client-go/blob/v0.33.0/plugin/pkg/client/auth/exec/exec.go>
//! (stdin is the terminal only in interactive mode; stdout is the ExecCredential; stderr is the
//! user's); kube-client 5.0.0 `src/client/auth/mod.rs` (`auth_exec`) sets the environment and
//! standard input the same way.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kube::config::ExecConfig;

/// The hidden subcommand the wrapped kubeconfig runs.
pub const SUBCOMMAND: &str = "__credential-plugin";

/// The most a credential plugin may print on stdout: an ExecCredential is a token and a few
/// fields, a few kilobytes even with a client certificate.
pub const MAX_STDOUT: usize = 1024 * 1024;

/// The most of the plugin's stderr passed on before only its end is kept: the last line says
/// why it failed.
const MAX_STDERR: usize = 1024 * 1024;
const STDERR_TAIL: usize = 4096;

/// Exit status of the wrapper when it, not the plugin, ended the run; a line of its stderr then
/// starts with [`VERDICT`].
const STOPPED: u8 = 125;
const VERDICT: &str = "kubectl-azflux credential plugin: ";

/// Makes `exec` run its plugin through this binary, bounded in output and, when `bound` is
/// given, in time. Left as it is when this binary cannot name itself (it then runs unbounded in
/// size, as kube runs it).
pub fn wrap(exec: &mut ExecConfig, bound: Option<Duration>) {
    let Some(command) = exec.command.clone() else {
        return;
    };
    let Some(this) = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
    else {
        return;
    };
    let millis = bound.map_or(0, |b| {
        u64::try_from(b.as_millis()).unwrap_or(u64::MAX).max(1)
    });
    let mut args = vec![
        SUBCOMMAND.to_string(),
        "--timeout-ms".to_string(),
        millis.to_string(),
        "--".to_string(),
        command,
    ];
    args.extend(exec.args.take().unwrap_or_default());
    exec.command = Some(this);
    exec.args = Some(args);
}

/// Why the wrapper stopped the plugin, from what kube kept of its stderr.
pub fn verdict(status: std::process::ExitStatus, stderr: &str) -> Option<&str> {
    if status.code() != Some(i32::from(STOPPED)) {
        return None;
    }
    stderr
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix(VERDICT))
}

/// `__credential-plugin --timeout-ms N -- COMMAND ARGS...`: runs COMMAND as kube would have.
pub fn run(args: &[OsString]) -> ExitCode {
    let (timeout, command) = match parse(args) {
        Ok(parsed) => parsed,
        Err(why) => return stop(&why),
    };
    let Some((program, rest)) = command.split_first() else {
        return stop("no plugin to run");
    };
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let mut command = Command::new(program);
    command
        .args(rest)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(if stderr_is_terminal {
            Stdio::inherit()
        } else {
            Stdio::piped()
        });
    let grouped = own_group(&mut command);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return stop(&format!("could not be started: {e}")),
    };
    let plugin = Plugin {
        pid: child.id(),
        grouped,
    };
    let overflow = Arc::new(AtomicBool::new(false));
    let (sender, printed) = std::sync::mpsc::channel();
    if let Some(pipe) = child.stdout.take() {
        let overflow = Arc::clone(&overflow);
        std::thread::spawn(move || sender.send(read_capped(pipe, &overflow)));
    }
    let stderr = child
        .stderr
        .take()
        .map(|pipe| std::thread::spawn(move || forward_stderr(pipe)));
    let deadline = timeout.map(|t| (t, Instant::now() + t));
    // The verdict is found by its prefix, so the plugin's stderr still being passed on after
    // it does not hide it; nothing waits for a pipe a leftover child of the plugin holds.
    let status = match wait(&mut child, &plugin, deadline, &overflow) {
        Ok(status) => status,
        Err(why) => return stop(&why),
    };
    // The plugin has exited; its output is complete once the pipe closes.
    let received = match deadline {
        Some((timeout, at)) => printed
            .recv_timeout(at.saturating_duration_since(Instant::now()))
            .map_err(|_| timed_out(timeout)),
        None => printed
            .recv()
            .map_err(|_| "its output could not be read".to_string()),
    };
    // What the plugin left running is stopped with it.
    let printed = match received {
        Ok(printed) => printed,
        Err(why) => {
            plugin.kill_group();
            return stop(&why);
        }
    };
    if overflow.load(Ordering::Relaxed) {
        plugin.kill_group();
        return stop(&too_much());
    }
    if let Some(stderr) = stderr {
        let _ = stderr.join();
    }
    let mut out = std::io::stdout().lock();
    if out.write_all(&printed).and_then(|()| out.flush()).is_err() {
        return stop("its output could not be passed on");
    }
    ExitCode::from(exit_code(status))
}

fn parse(args: &[OsString]) -> Result<(Option<Duration>, Vec<OsString>), String> {
    match args {
        [flag, millis, separator, command @ ..] if flag == "--timeout-ms" && separator == "--" => {
            let millis: u64 = millis
                .to_str()
                .and_then(|m| m.parse().ok())
                .ok_or("--timeout-ms needs milliseconds")?;
            Ok((
                (millis > 0).then(|| Duration::from_millis(millis)),
                command.to_vec(),
            ))
        }
        _ => Err(format!(
            "usage: {SUBCOMMAND} --timeout-ms N -- COMMAND ARGS..."
        )),
    }
}

fn too_much() -> String {
    format!(
        "printed more than {} MiB on stdout (the most an ExecCredential may be) and was stopped",
        MAX_STDOUT / 1024 / 1024
    )
}

fn timed_out(timeout: Duration) -> String {
    format!(
        "did not finish within {}s (--request-timeout)",
        timeout.as_secs_f32()
    )
}

/// Starts the plugin in a process group of its own, so that stopping it stops what it started
/// (`az`, a browser helper) too; except when standard input is a terminal, where the plugin
/// may ask the person something: a process outside the terminal's foreground group that reads
/// it is stopped by the kernel (SIGTTIN), and Ctrl-C reaches the foreground group, plugin and
/// all, anyway. Whether it has its own group.
fn own_group(command: &mut Command) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        if !std::io::stdin().is_terminal() {
            command.process_group(0);
            return true;
        }
    }
    let _ = command;
    false
}

/// The running plugin: its process ID, which is its process group's when it has its own.
struct Plugin {
    pid: u32,
    grouped: bool,
}

impl Plugin {
    /// Kills every process left in the plugin's group. The group's ID is not handed to a new
    /// process while any member lives, so once none does this reaches nothing.
    fn kill_group(&self) {
        #[cfg(unix)]
        if self.grouped
            && let Some(group) = i32::try_from(self.pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }

    /// Kills the plugin and its group, and reaps it.
    fn kill(&self, child: &mut Child) {
        self.kill_group();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits for the plugin, killing it once it prints too much or outlives its deadline.
fn wait(
    child: &mut Child,
    plugin: &Plugin,
    deadline: Option<(Duration, Instant)>,
    overflow: &AtomicBool,
) -> Result<std::process::ExitStatus, String> {
    loop {
        if overflow.load(Ordering::Relaxed) {
            plugin.kill(child);
            return Err(too_much());
        }
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
        if let Some((timeout, at)) = deadline
            && Instant::now() >= at
        {
            plugin.kill(child);
            return Err(timed_out(timeout));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads the plugin's stdout up to [`MAX_STDOUT`]; past it, flags the overflow and stops
/// reading, so the plugin blocks on a full pipe until it is killed.
fn read_capped(pipe: impl Read, overflow: &AtomicBool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_STDOUT).unwrap_or(u64::MAX) + 1;
    let _ = pipe.take(limit).read_to_end(&mut bytes);
    if bytes.len() > MAX_STDOUT {
        overflow.store(true, Ordering::Relaxed);
    }
    bytes
}

/// Passes the plugin's stderr on as it comes, up to [`MAX_STDERR`]; past it, keeps only the
/// last [`STDERR_TAIL`] bytes, written when the plugin closes it.
fn forward_stderr(mut pipe: impl Read) {
    let mut out = std::io::stderr();
    let mut passed = 0usize;
    let mut tail: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = match pipe.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        if passed < MAX_STDERR {
            let _ = out.write_all(chunk);
            passed += read;
        } else {
            tail.extend_from_slice(chunk);
            if tail.len() > STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
    }
    if !tail.is_empty() {
        let _ = out.write_all(b"\n[...]\n");
        let _ = out.write_all(&tail);
    }
}

/// The plugin's own exit code; a signal reads as the shell shows it, 128 + its number.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from(128 + signal).unwrap_or(1);
        }
    }
    1
}

fn stop(why: &str) -> ExitCode {
    eprintln!("\n{VERDICT}{why}");
    ExitCode::from(STOPPED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_runs_through_this_binary_with_its_arguments() {
        let mut exec = ExecConfig {
            api_version: None,
            command: Some("kubelogin".into()),
            args: Some(vec![
                "get-token".into(),
                "--login".into(),
                "azurecli".into(),
            ]),
            env: None,
            drop_env: None,
            install_hint: None,
            interactive_mode: None,
            provide_cluster_info: false,
            cluster: None,
            other: std::collections::BTreeMap::new(),
        };
        wrap(&mut exec, Some(Duration::from_secs(3)));
        let this = std::env::current_exe().unwrap();
        assert_eq!(exec.command.as_deref(), this.to_str());
        assert_eq!(
            exec.args.unwrap(),
            [
                SUBCOMMAND,
                "--timeout-ms",
                "3000",
                "--",
                "kubelogin",
                "get-token",
                "--login",
                "azurecli"
            ]
        );
    }

    #[test]
    fn arguments_parse_back() {
        let args: Vec<OsString> = ["--timeout-ms", "0", "--", "kubelogin", "--x"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let (timeout, command) = parse(&args).unwrap();
        assert_eq!(timeout, None);
        assert_eq!(command, ["kubelogin", "--x"]);
        assert!(parse(&args[1..]).is_err());
    }
}
