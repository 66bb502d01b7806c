//! How a node client reaches its node: over the network, or in-process.
//!
//! [`Transport`] is the service every [`crate::NodeClient`] is built on. It
//! is either a tonic [`Channel`] (HTTP/2 over TCP) or, when the node runs in
//! the same process and registered itself with [`serve_local`], a direct
//! call into that node's tonic service. The in-process path keeps the whole
//! gRPC contract (protobuf encoding, status codes, message size limits,
//! deadlines) and drops what only a network needs: HTTP/2 framing, socket
//! writes and reads, and a task hop per request. In `evenkeel up`, where
//! router, coordinator and nodes share one process and one small runtime,
//! that is most of the CPU a request costs (the same shortcut CockroachDB
//! takes for calls to its local node).
//!
//! Semantics match TCP where callers can tell: a node that stopped refuses
//! calls as a refused connection would (`UNAVAILABLE`, with an
//! `io::ErrorKind::ConnectionRefused` source, so callers know the request
//! was never delivered), and comes back when a node registers the same
//! address again. A request's `grpc-timeout` is enforced here as tonic's
//! server would, answering `CANCELLED` when it expires.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::Service;
use tower::util::BoxCloneSyncService;

/// A node's tonic service, type-erased so this crate need not name it.
pub type LocalService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send>>;

/// The service a [`crate::NodeClient`] sends its requests through.
#[derive(Clone)]
pub enum Transport {
    Remote(Channel),
    Local(Arc<LocalSlot>),
}

/// Where an in-process node at one address is reachable; empty while no
/// node serves there.
pub struct LocalSlot {
    addr: String,
    service: Mutex<Option<LocalService>>,
}

/// Serves in-process calls for `addr` until dropped.
#[must_use = "the node stops being reachable in-process when the guard drops"]
pub struct LocalGuard(Arc<LocalSlot>);

impl Drop for LocalGuard {
    fn drop(&mut self) {
        *self.0.service.lock().expect("local slot lock") = None;
    }
}

static REGISTRY: LazyLock<Mutex<HashMap<String, Arc<LocalSlot>>>> = LazyLock::new(Default::default);

/// Makes the node service `service` reachable in-process at `addr`: every
/// client built by [`crate::connect_lazy`] for `addr` from now on calls it
/// directly. Clients built earlier keep their network channel.
pub fn serve_local(addr: &str, service: LocalService) -> LocalGuard {
    let slot = REGISTRY
        .lock()
        .expect("local registry lock")
        .entry(addr.to_string())
        .or_insert_with(|| Arc::new(LocalSlot { addr: addr.to_string(), service: Mutex::new(None) }))
        .clone();
    *slot.service.lock().expect("local slot lock") = Some(service);
    LocalGuard(slot)
}

/// The in-process slot for `addr`, if a node of this process ever served
/// there.
pub(crate) fn local_slot(addr: &str) -> Option<Arc<LocalSlot>> {
    REGISTRY.lock().expect("local registry lock").get(addr).cloned()
}

impl Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Transport::Remote(channel) => channel.poll_ready(cx).map_err(Into::into),
            Transport::Local(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> BoxFuture {
        match self {
            Transport::Remote(channel) => {
                let call = channel.call(request);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
            Transport::Local(slot) => {
                let service = slot.service.lock().expect("local slot lock").clone();
                let addr = slot.addr.clone();
                Box::pin(call_local(service, addr, request))
            }
        }
    }
}

async fn call_local(service: Option<LocalService>, addr: String, request: http::Request<Body>) -> Result<http::Response<Body>, BoxError> {
    let Some(mut service) = service else {
        let mut status = tonic::Status::unavailable(format!("node at {addr} is not serving (in-process): connection refused"));
        status.set_source(Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        return Err(Box::new(status));
    };
    let deadline = request.headers().get("grpc-timeout").and_then(|v| parse_grpc_timeout(v.as_bytes()));
    let response = service.call(request);
    let response = match deadline {
        None => response.await,
        Some(d) => match tokio::time::timeout(d, response).await {
            Ok(r) => r,
            Err(_) => return Ok(tonic::Status::cancelled("Timeout expired").into_http()),
        },
    };
    Ok(response.unwrap_or_else(|never| match never {}))
}

/// The deadline the caller gave `request` (its `grpc-timeout`), as time
/// left from when the request arrived; None without one.
pub fn request_timeout<T>(request: &tonic::Request<T>) -> Option<Duration> {
    request.metadata().get("grpc-timeout").and_then(|v| parse_grpc_timeout(v.as_bytes()))
}

/// Parses a gRPC `grpc-timeout` header value: at most 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_grpc_timeout(raw: &[u8]) -> Option<Duration> {
    let (&unit, digits) = raw.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_tonic_writes_them() {
        assert_eq!(parse_grpc_timeout(b"2000m"), Some(Duration::from_millis(2000)));
        assert_eq!(parse_grpc_timeout(b"5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"30u"), Some(Duration::from_micros(30)));
        assert_eq!(parse_grpc_timeout(b"m"), None);
        assert_eq!(parse_grpc_timeout(b"123456789m"), None, "at most 8 digits");
        assert_eq!(parse_grpc_timeout(b"12x"), None);
        assert_eq!(parse_grpc_timeout(b"-1m"), None);
    }
}
