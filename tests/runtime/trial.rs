//! `healthlake-operator trial`, as a new user runs it: one command, a KUBECONFIG line, health on
//! loopback, logs without colour codes when not on a terminal, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::support::{eventually, get};

/// Kills the process this test started when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines of a child's output, as they come.
fn lines(output: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

fn next_line(lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with(prefix) => return line,
            Ok(_) => continue,
            Err(error) => panic!("no line starting with {prefix:?}: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trial_prints_its_kubeconfig_serves_health_on_loopback_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_healthlake-operator"))
        .args(["trial", "--log-format", "json"])
        .env_remove("RUST_LOG")
        .env_remove("POD_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the trial");
    let stdout = lines(child.stdout.take().expect("piped stdout"));
    let stderr = lines(child.stderr.take().expect("piped stderr"));
    let pid = child.id();
    let mut guard = ChildGuard(child);

    let kubeconfig = next_line(&stdout, "export KUBECONFIG=");
    assert!(
        kubeconfig.len() > "export KUBECONFIG=".len(),
        "{kubeconfig}"
    );
    let endpoint = next_line(&stdout, "health and metrics on http://");
    let address: SocketAddr = endpoint
        .trim_start_matches("health and metrics on http://")
        .trim_end_matches("/metrics")
        .parse()
        .expect("an address in the line");
    assert!(address.ip().is_loopback(), "{endpoint}");
    assert_ne!(
        address.port(),
        8080,
        "a free port, not the production default"
    );
    eventually("the trial is ready", || async {
        get(address, "/readyz").await.0 == 200
    })
    .await;

    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || guard.0.wait())
        .await
        .expect("waited")
        .expect("the trial exits");
    assert!(exit.success(), "SIGTERM is a clean stop: {exit:?}");

    let logged: Vec<String> = stderr.iter().collect();
    assert!(!logged.is_empty(), "the trial logs");
    for line in &logged {
        assert!(
            !line.contains('\u{1b}'),
            "no colour codes off a terminal: {line:?}"
        );
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(object.get("level").is_some(), "{line}");
    }
    assert!(
        logged
            .iter()
            .any(|line| line.contains("released the lease, stopping")),
        "{logged:#?}"
    );
}
