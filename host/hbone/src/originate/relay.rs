//! Byte relay between Envoy's TCP connection and one HBONE stream, with clean half-close both
//! ways: an end from either side becomes FIN / END_STREAM, and the stream is never reset.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// How a relay ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayOutcome {
    /// Bytes Envoy → pod and pod → Envoy (including bytes drained after Envoy left).
    pub up: u64,
    pub down: u64,
    /// Pod bytes that arrived after Envoy had closed and were discarded.
    pub discarded: u64,
    /// The pod's stream ended in an error (reset) rather than END_STREAM.
    pub pod_error: Option<String>,
    /// Envoy's side ended in an error (e.g. ECONNRESET) rather than FIN.
    pub envoy_error: Option<String>,
    /// Gave up draining the pod's stream after `drain` (then dropping it resets it).
    pub drain_timed_out: bool,
}

/// Relay until both directions are done. `envoy` is the TCP side, `(pod_r, pod_w)` the
/// HBONE stream's halves. When Envoy goes away first, the pod still gets END_STREAM and its
/// remaining data is read (discarded) up to END_STREAM within `drain`: dropping an h2
/// `RecvStream` early makes h2 send RST_STREAM(CANCEL), which a ztunnel reports as an error.
pub async fn relay<ER, EW, PR, PW>(
    mut envoy_r: ER,
    mut envoy_w: EW,
    mut pod_r: PR,
    mut pod_w: PW,
    drain: Duration,
) -> RelayOutcome
where
    ER: AsyncRead + Unpin,
    EW: AsyncWrite + Unpin,
    PR: AsyncRead + Unpin,
    PW: AsyncWrite + Unpin,
{
    let up = async {
        let r = tokio::io::copy(&mut envoy_r, &mut pod_w).await;
        // FIN or error from Envoy: END_STREAM after everything queued (h2 keeps the order).
        let _ = pod_w.shutdown().await;
        r
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        let (mut total, mut discarded) = (0u64, 0u64);
        let mut deadline: Option<Instant> = None;
        loop {
            let read = match deadline {
                None => pod_r.read(&mut buf).await,
                Some(d) => match tokio::time::timeout_at(d, pod_r.read(&mut buf)).await {
                    Ok(r) => r,
                    Err(_) => return (total, discarded, Ok(()), true),
                },
            };
            match read {
                Ok(0) => {
                    if deadline.is_none() {
                        // The pod finished first: FIN after the last byte, Envoy's half stays.
                        let _ = envoy_w.shutdown().await;
                    }
                    return (total, discarded, Ok(()), false);
                }
                Ok(n) => {
                    total += n as u64;
                    if deadline.is_some() {
                        discarded += n as u64;
                    } else if envoy_w.write_all(&buf[..n]).await.is_err() {
                        // Envoy closed (e.g. after a `Connection: close` response): keep
                        // reading to END_STREAM instead of resetting the pod's stream.
                        discarded += n as u64;
                        deadline = Some(Instant::now() + drain);
                    }
                }
                Err(e) => return (total, discarded, Err(e), false),
            }
        }
    };
    let (up, (down, discarded, pod_end, drain_timed_out)) = tokio::join!(up, down);
    RelayOutcome {
        up: *up.as_ref().unwrap_or(&0),
        down,
        discarded,
        pod_error: pod_end.err().map(|e| e.to_string()),
        envoy_error: up.err().map(|e| e.to_string()),
        drain_timed_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table: what Envoy does × what the pod does → bytes delivered and ends seen.
    #[tokio::test]
    async fn ends_are_clean_both_ways() {
        // (pod sends, Envoy reads the answer before closing, want delivered, want discarded)
        for (pod_bytes, envoy_reads, want_down, want_discarded) in [
            (100_000usize, true, 100_000u64, 0u64),
            (0, true, 0, 0),
            (300_000, false, 300_000, 300_000),
        ] {
            let (envoy_side, relay_envoy) = tokio::io::duplex(16 * 1024);
            let (pod_side, relay_pod) = tokio::io::duplex(16 * 1024);
            let (er, ew) = tokio::io::split(relay_envoy);
            let (pr, pw) = tokio::io::split(relay_pod);
            let task = tokio::spawn(relay(er, ew, pr, pw, Duration::from_secs(5)));
            let (mut pod_r, mut pod_w) = tokio::io::split(pod_side);
            let pod = tokio::spawn(async move {
                let mut req = Vec::new();
                pod_r
                    .read_to_end(&mut req)
                    .await
                    .expect("pod reads to END_STREAM");
                pod_w
                    .write_all(&vec![7u8; pod_bytes])
                    .await
                    .expect("pod writes");
                pod_w.shutdown().await.expect("pod ends");
                req
            });
            let (mut env_r, mut env_w) = tokio::io::split(envoy_side);
            env_w
                .write_all(b"GET / HTTP/1.1\r\n\r\n")
                .await
                .expect("write");
            env_w.shutdown().await.expect("half-close");
            if envoy_reads {
                let mut got = Vec::new();
                env_r.read_to_end(&mut got).await.expect("read");
                assert_eq!(got.len(), pod_bytes);
            } else {
                drop(env_r);
                drop(env_w);
            }
            let out = task.await.expect("relay");
            assert_eq!(pod.await.expect("pod").len(), 18);
            assert_eq!(out.up, 18);
            if envoy_reads {
                assert_eq!(out.down, want_down);
            }
            assert!(out.discarded <= want_discarded, "{out:?}");
            assert_eq!(out.pod_error, None);
            assert!(!out.drain_timed_out);
        }
    }
}
