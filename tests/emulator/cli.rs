//! `healthlake-operator emulator`: serves the SDK and logs one line per call.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_sdk_healthlake::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_healthlake::types::FhirVersion;

/// Kills the emulator process this test started when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to a generous limit for the next log line that contains `needle`.
fn next_line_with(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(error) => panic!("no log line containing {needle:?}: {error}"),
        }
    }
}

#[tokio::test]
async fn the_emulator_command_serves_the_sdk_and_logs_each_call() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_healthlake-operator"))
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--region",
            "eu-west-1",
            "--account-id",
            "210987654321",
            "--profile",
            "realistic",
            "--no-quotas",
            "--max-datastores",
            "1",
            "--job-concurrency",
            "datastore",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the emulator command");
    // Logs go to stderr.
    let stderr = child.stderr.take().expect("piped stderr");
    let _guard = ChildGuard(child);
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });

    let listening = next_line_with(&lines, "endpoint=");
    let endpoint = listening
        .split("endpoint=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the endpoint in the log line")
        .to_string();
    let config = aws_sdk_healthlake::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .build();
    let client = aws_sdk_healthlake::Client::from_conf(config);
    let created = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .send()
        .await
        .expect("create through the command's server");
    assert!(
        created
            .datastore_arn
            .starts_with("arn:aws:healthlake:eu-west-1:210987654321:datastore/fhir/")
    );
    let logged = next_line_with(&lines, "healthlake call");
    assert!(logged.contains("operation=CreateFHIRDatastore"), "{logged}");
    assert!(logged.contains("region=eu-west-1"), "{logged}");
    assert!(logged.contains("status=200"), "{logged}");

    let error = client
        .delete_fhir_datastore()
        .datastore_id(&created.datastore_id)
        .send()
        .await
        .expect_err("the realistic profile keeps it CREATING");
    assert_eq!(
        crate::support::error_code(&error).as_deref(),
        Some("ConflictException")
    );
    let logged = next_line_with(&lines, "healthlake call");
    assert!(logged.contains("operation=DeleteFHIRDatastore"), "{logged}");
    assert!(logged.contains("ConflictException"), "{logged}");

    let over_quota = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .send()
        .await
        .expect_err("--max-datastores 1 allows one");
    assert_eq!(
        crate::support::error_code(&over_quota).as_deref(),
        Some("ValidationException")
    );
    let address = endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("a socket address");
    let (status, _, body) =
        crate::support::raw_request(address, "GET", "/_emulator/state", &[], "").await;
    assert_eq!(status, 200);
    let state: serde_json::Value = serde_json::from_str(&body).expect("json state");
    assert_eq!(state["max_datastores"], 1);
    assert_eq!(state["job_concurrency"], "datastore");
    assert_eq!(state["regions"]["eu-west-1"]["quotas"]["datastores"], 1);
}
