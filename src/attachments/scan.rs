//! Malware scanning of uploads by clamd (INSTREAM), through the `clamav-client` crate.
//!
//! A file is scanned as received, before anything is stored or recorded, and outside any
//! database transaction (a scan of 20 MiB takes a while). When clamd is configured and cannot
//! answer — down, timing out, refusing the stream — the upload answers 503 and nothing is
//! stored: a file is never let through unscanned.

use std::path::Path;
use std::time::Duration;

use crate::config::Clamd;
use crate::error::AppError;

/// What clamd said of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The signature clamd named (e.g. `Eicar-Test-Signature`).
    Infected(String),
}

/// clamd's answer to INSTREAM: `stream: OK`, `stream: NAME FOUND`, or `… ERROR`.
fn verdict(response: &[u8]) -> Result<Verdict, String> {
    let text = String::from_utf8_lossy(response);
    let text = text.trim_end_matches(['\0', '\n']).trim();
    let answer = text.strip_prefix("stream:").map(str::trim).unwrap_or(text);
    if answer == "OK" {
        Ok(Verdict::Clean)
    } else if let Some(signature) = answer.strip_suffix(" FOUND") {
        Ok(Verdict::Infected(signature.trim().to_string()))
    } else {
        Err(format!("clamd answered {text:?}"))
    }
}

async fn ask(clamd: &Clamd, file: &Path) -> std::io::Result<Vec<u8>> {
    match clamd {
        Clamd::Tcp(addr) => {
            clamav_client::tokio::scan_file(file, clamav_client::tokio::Tcp { host_address: addr.as_str() }, None).await
        }
        Clamd::Unix(path) => {
            clamav_client::tokio::scan_file(file, clamav_client::tokio::Socket { socket_path: path.as_path() }, None)
                .await
        }
    }
}

/// Scans the file at `file`. Any trouble reaching clamd is a 503 (logged, never shown).
pub async fn scan(clamd: &Clamd, file: &Path, timeout: Duration) -> Result<Verdict, AppError> {
    let response = match tokio::time::timeout(timeout, ask(clamd, file)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "clamd: scan failed");
            return Err(AppError::scanner_unavailable());
        }
        Err(_) => {
            tracing::warn!(timeout_secs = timeout.as_secs(), "clamd: scan timed out");
            return Err(AppError::scanner_unavailable());
        }
    };
    verdict(&response).map_err(|e| {
        tracing::warn!(error = %e, "clamd: unexpected answer");
        AppError::scanner_unavailable()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_clamds_answers() {
        assert_eq!(verdict(b"stream: OK\0"), Ok(Verdict::Clean));
        assert_eq!(
            verdict(b"stream: Eicar-Test-Signature FOUND\0"),
            Ok(Verdict::Infected("Eicar-Test-Signature".into()))
        );
        assert!(verdict(b"INSTREAM size limit exceeded. ERROR\0").is_err());
        assert!(verdict(b"").is_err());
    }
}
