//! How a node client reaches its node: over the network, or in-process.
//!
//! A [`NodeClient`] either holds a tonic client over a [`Channel`] (HTTP/2
//! over TCP) or, when the node runs in the same process and registered
//! itself with [`serve_local`], calls that node's [`Node`] service directly:
//! the request message goes to the handler as it is and the handler's
//! response comes back as it is, with no protobuf encoding or decoding, no
//! HTTP/2 framing or headers, no socket and no task hop. In `evenkeel up`,
//! where router, coordinator and nodes share one process and one small
//! runtime, those layers are most of the CPU a request costs (the same
//! shortcut CockroachDB takes for calls to its local node).
//!
//! The contract is the network's wherever a caller can tell:
//! - a node that stopped refuses calls as a refused connection would
//!   (`UNAVAILABLE`, with an `io::ErrorKind::ConnectionRefused` source, so
//!   callers know the request was never delivered), and comes back when a
//!   node registers the same address again;
//! - a request's deadline (`grpc-timeout`, from `Request::set_timeout`) is
//!   enforced as tonic's server enforces it, answering `CANCELLED`, and the
//!   handler sees it as it would over the wire ([`request_timeout`]);
//! - the node's message size limit applies both ways, with tonic's code
//!   (`OUT_OF_RANGE`) and wording;
//! - an error reaches the caller as the wire carries it: code, message,
//!   details and metadata, never the node's in-process source error (which
//!   could otherwise pass for a refused connection).

use crate::pb;
use crate::pb::node_client::NodeClient as GrpcClient;
use crate::pb::node_server::Node;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// A client of one node's `Node` service, over the network or in-process;
/// cheap to clone. Built by [`crate::connect_lazy`].
#[derive(Clone)]
pub struct NodeClient(Path);

#[derive(Clone)]
enum Path {
    Remote(GrpcClient<Channel>),
    Local(Arc<LocalSlot>),
}

impl NodeClient {
    pub(crate) fn remote(channel: Channel) -> Self {
        NodeClient(Path::Remote(GrpcClient::new(channel).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX)))
    }

    pub(crate) fn local(slot: Arc<LocalSlot>) -> Self {
        NodeClient(Path::Local(slot))
    }

    /// Whether calls go straight into a node of this process.
    #[cfg(test)]
    fn is_in_process(&self) -> bool {
        matches!(self.0, Path::Local(_))
    }
}

/// One method per RPC of the `Node` service, with the generated client's
/// signature, taking whichever path this client has.
macro_rules! rpcs {
    ($($method:ident($req:ty) -> $resp:ty;)*) => {
        impl NodeClient {
            $(
                pub async fn $method(&mut self, request: impl tonic::IntoRequest<$req>) -> Result<Response<$resp>, Status> {
                    match &mut self.0 {
                        Path::Remote(client) => client.$method(request).await,
                        Path::Local(slot) => {
                            let (node, limit) = slot.serving()?;
                            let request = request.into_request();
                            within_limit(request.get_ref(), limit, "decoded")?;
                            let deadline = request_timeout(&request);
                            call_local(node.$method(request), deadline, limit).await
                        }
                    }
                }
            )*
        }
    };
}

rpcs! {
    execute(pb::ExecuteRequest) -> pb::ExecuteResponse;
    scan(pb::ScanRequest) -> pb::ScanResponse;
    stats(pb::StatsRequest) -> pb::StatsResponse;
    migrate_begin(pb::MigrateHeader) -> pb::PositionResponse;
    migrate_snapshot(pb::SnapshotRequest) -> pb::SnapshotResponse;
    migrate_read_log(pb::ReadLogRequest) -> pb::ReadLogResponse;
    migrate_apply(pb::ApplyRequest) -> pb::ApplyResponse;
    migrate_fence(pb::FenceRequest) -> pb::PositionResponse;
    migrate_checksum(pb::ChecksumRequest) -> pb::ChecksumResponse;
    migrate_drop(pb::DropRequest) -> pb::DropResponse;
    migrate_shadow_read(pb::ShadowReadRequest) -> pb::ShadowReadResponse;
    pub_sub_interest(pb::InterestRequest) -> pb::InterestResponse;
    publish(pb::PublishRequest) -> pb::PublishResponse;
    pub_sub_query(pb::PubSubQueryRequest) -> pb::PubSubQueryResponse;
    kill_scripts(pb::KillScriptsRequest) -> pb::KillScriptsResponse;
}

/// A node's Pub/Sub feed ([`NodeClient::pub_sub_feed`]), and the stream
/// type every [`Node`] served in-process answers it with.
pub type Feed = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::PubSubMessage, Status>> + Send>>;

impl NodeClient {
    /// Opens a Pub/Sub feed: the messages the node relays to this link
    /// until the stream ends. In-process, the node's own stream; over the
    /// network, tonic's (each message within the size limits as above).
    pub async fn pub_sub_feed(&mut self, request: impl tonic::IntoRequest<pb::FeedRequest>) -> Result<Feed, Status> {
        match &mut self.0 {
            Path::Remote(client) => Ok(Box::pin(client.pub_sub_feed(request).await?.into_inner())),
            Path::Local(slot) => {
                let (node, _) = slot.serving()?;
                let feed = node.pub_sub_feed(request.into_request()).await;
                feed.map(Response::into_inner).map_err(|s| Status::with_details_and_metadata(s.code(), s.message(), s.details().to_vec().into(), s.metadata().clone()))
            }
        }
    }
}

/// Runs an in-process handler's call under the request's deadline and
/// hands back what the wire would have.
async fn call_local<T: prost::Message>(call: impl Future<Output = Result<Response<T>, Status>>, deadline: Option<Duration>, limit: usize) -> Result<Response<T>, Status> {
    let answer = match deadline {
        None => call.await,
        Some(d) => tokio::time::timeout(d, call).await.unwrap_or_else(|_| Err(Status::cancelled("Timeout expired"))),
    };
    match answer {
        Ok(response) => {
            within_limit(response.get_ref(), limit, "encoded")?;
            Ok(response)
        }
        Err(status) => Err(Status::with_details_and_metadata(status.code(), status.message(), status.details().to_vec().into(), status.metadata().clone())),
    }
}

/// tonic's check of a message against a size limit (`decoded` for a
/// request the node reads, `encoded` for a response it writes).
fn within_limit(message: &impl prost::Message, limit: usize, what: &str) -> Result<(), Status> {
    let len = message.encoded_len();
    if len > limit {
        return Err(Status::out_of_range(format!("Error, {what} message length too large: found {len} bytes, the limit is: {limit} bytes")));
    }
    Ok(())
}

/// A node served in-process: its feed is a boxed stream.
type LocalNode = dyn Node<PubSubFeedStream = Feed>;

/// Where an in-process node at one address is reachable; empty while no
/// node serves there.
pub(crate) struct LocalSlot {
    addr: String,
    serving: Mutex<Option<(Arc<LocalNode>, usize)>>,
}

impl LocalSlot {
    /// The node serving here and its message size limit, or the refusal a
    /// stopped node's closed port would give.
    fn serving(&self) -> Result<(Arc<LocalNode>, usize), Status> {
        if let Some(serving) = self.serving.lock().expect("local slot lock").clone() {
            return Ok(serving);
        }
        let mut status = Status::unavailable(format!("node at {} is not serving (in-process): connection refused", self.addr));
        status.set_source(Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        Err(status)
    }
}

/// Serves in-process calls for `addr` until dropped.
#[must_use = "the node stops being reachable in-process when the guard drops"]
pub struct LocalGuard(Arc<LocalSlot>);

impl Drop for LocalGuard {
    fn drop(&mut self) {
        *self.0.serving.lock().expect("local slot lock") = None;
    }
}

static REGISTRY: LazyLock<Mutex<HashMap<String, Arc<LocalSlot>>>> = LazyLock::new(Default::default);

/// Makes `node` reachable in-process at `addr`, with `max_message_bytes`
/// as the size limit of requests and responses (what its network server
/// enforces): every client built by [`crate::connect_lazy`] for `addr`
/// from now on calls it directly. Clients built earlier keep their network
/// channel.
pub fn serve_local(addr: &str, node: impl Node<PubSubFeedStream = Feed>, max_message_bytes: usize) -> LocalGuard {
    let slot = REGISTRY
        .lock()
        .expect("local registry lock")
        .entry(addr.to_string())
        .or_insert_with(|| Arc::new(LocalSlot { addr: addr.to_string(), serving: Mutex::new(None) }))
        .clone();
    *slot.serving.lock().expect("local slot lock") = Some((Arc::new(node), max_message_bytes));
    LocalGuard(slot)
}

/// Forgets the in-process slot for `addr` unless a node serves there now:
/// for a node served over the network at an address an in-process node of
/// this process once had (the system reuses ports), so that clients built
/// from then on connect to it over TCP rather than find the old, empty
/// slot and answer "not serving". (A serving slot's node holds the
/// address's listener, so no other node can have it meanwhile.)
pub fn forget_local(addr: &str) {
    let mut registry = REGISTRY.lock().expect("local registry lock");
    if registry.get(addr).is_some_and(|slot| slot.serving.lock().expect("local slot lock").is_none()) {
        registry.remove(addr);
    }
}

/// The in-process slot for `addr`, if a node of this process ever served
/// there.
pub(crate) fn local_slot(addr: &str) -> Option<Arc<LocalSlot>> {
    REGISTRY.lock().expect("local registry lock").get(addr).cloned()
}

/// The deadline the caller gave `request` (its `grpc-timeout`), as time
/// left from when the request arrived; None without one.
pub fn request_timeout<T>(request: &Request<T>) -> Option<Duration> {
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A node whose `Execute` answers one empty result per op (or fails as
    /// the first op's key asks) and whose `Stats` takes a second.
    #[derive(Default)]
    struct Fake {
        calls: AtomicUsize,
        deadline_seen: Mutex<Option<Duration>>,
    }

    #[tonic::async_trait]
    impl Node for Arc<Fake> {
        async fn execute(&self, request: Request<pb::ExecuteRequest>) -> Result<Response<pb::ExecuteResponse>, Status> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            *self.deadline_seen.lock().unwrap() = request_timeout(&request);
            let req = request.into_inner();
            match req.ops.first().map(|op| op.key.as_ref()) {
                Some(b"fail") => {
                    let mut status = Status::unavailable("store gone");
                    status.set_source(Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
                    Err(status)
                }
                Some(b"big") => Ok(Response::new(pb::ExecuteResponse { results: vec![pb::OpResult::default(); 200] })),
                _ => Ok(Response::new(pb::ExecuteResponse { results: vec![pb::OpResult::default(); req.ops.len()] })),
            }
        }
        async fn stats(&self, _: Request<pb::StatsRequest>) -> Result<Response<pb::StatsResponse>, Status> {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(Response::new(pb::StatsResponse::default()))
        }
        async fn scan(&self, _: Request<pb::ScanRequest>) -> Result<Response<pb::ScanResponse>, Status> {
            Err(Status::unimplemented("scan"))
        }
        async fn migrate_begin(&self, _: Request<pb::MigrateHeader>) -> Result<Response<pb::PositionResponse>, Status> {
            Err(Status::unimplemented("migrate_begin"))
        }
        async fn migrate_snapshot(&self, _: Request<pb::SnapshotRequest>) -> Result<Response<pb::SnapshotResponse>, Status> {
            Err(Status::unimplemented("migrate_snapshot"))
        }
        async fn migrate_read_log(&self, _: Request<pb::ReadLogRequest>) -> Result<Response<pb::ReadLogResponse>, Status> {
            Err(Status::unimplemented("migrate_read_log"))
        }
        async fn migrate_apply(&self, _: Request<pb::ApplyRequest>) -> Result<Response<pb::ApplyResponse>, Status> {
            Err(Status::unimplemented("migrate_apply"))
        }
        async fn migrate_fence(&self, _: Request<pb::FenceRequest>) -> Result<Response<pb::PositionResponse>, Status> {
            Err(Status::unimplemented("migrate_fence"))
        }
        async fn migrate_checksum(&self, _: Request<pb::ChecksumRequest>) -> Result<Response<pb::ChecksumResponse>, Status> {
            Err(Status::unimplemented("migrate_checksum"))
        }
        async fn migrate_drop(&self, _: Request<pb::DropRequest>) -> Result<Response<pb::DropResponse>, Status> {
            Err(Status::unimplemented("migrate_drop"))
        }
        async fn migrate_shadow_read(&self, _: Request<pb::ShadowReadRequest>) -> Result<Response<pb::ShadowReadResponse>, Status> {
            Err(Status::unimplemented("migrate_shadow_read"))
        }
        type PubSubFeedStream = Feed;
        async fn pub_sub_feed(&self, _: Request<pb::FeedRequest>) -> Result<Response<Feed>, Status> {
            let messages = (0..3).map(|i| Ok(pb::PubSubMessage { channel: bytes::Bytes::from(format!("ch{i}")), ..Default::default() }));
            Ok(Response::new(Box::pin(tokio_stream::iter(messages.collect::<Vec<_>>()))))
        }
        async fn pub_sub_interest(&self, _: Request<pb::InterestRequest>) -> Result<Response<pb::InterestResponse>, Status> {
            Err(Status::unimplemented("pub_sub_interest"))
        }
        async fn publish(&self, _: Request<pb::PublishRequest>) -> Result<Response<pb::PublishResponse>, Status> {
            Err(Status::unimplemented("publish"))
        }
        async fn pub_sub_query(&self, _: Request<pb::PubSubQueryRequest>) -> Result<Response<pb::PubSubQueryResponse>, Status> {
            Err(Status::unimplemented("pub_sub_query"))
        }

        async fn kill_scripts(&self, _: Request<pb::KillScriptsRequest>) -> Result<Response<pb::KillScriptsResponse>, Status> {
            Err(Status::unimplemented("kill_scripts"))
        }
    }

    /// A fake node served in-process at `addr` with `limit` as its message
    /// size limit, and a client for it.
    fn served(addr: &str, limit: usize) -> (Arc<Fake>, LocalGuard, NodeClient) {
        let fake = Arc::new(Fake::default());
        let guard = serve_local(addr, fake.clone(), limit);
        let client = crate::connect_lazy(addr).unwrap();
        assert!(client.is_in_process());
        (fake, guard, client)
    }

    fn ops(key: &'static str, n: usize) -> pb::ExecuteRequest {
        let op = pb::Op { key: bytes::Bytes::from_static(key.as_bytes()), ..Default::default() };
        pb::ExecuteRequest { epoch: 1, ops: vec![op; n], router: 0 }
    }

    fn refused_connection(status: &Status) -> bool {
        std::error::Error::source(status).and_then(|e| e.downcast_ref::<std::io::Error>()).is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    }

    #[tokio::test]
    async fn the_handler_gets_the_request_and_its_deadline_as_sent() {
        let (fake, _guard, mut client) = served("fake:1", 1 << 20);
        let mut request = Request::new(ops("k", 3));
        request.set_timeout(Duration::from_millis(1500));
        assert_eq!(client.execute(request).await.unwrap().into_inner().results.len(), 3);
        assert_eq!(*fake.deadline_seen.lock().unwrap(), Some(Duration::from_millis(1500)));
    }

    #[tokio::test]
    async fn an_expired_deadline_answers_cancelled_as_tonics_server_does() {
        let (_fake, _guard, mut client) = served("fake:2", 1 << 20);
        let mut request = Request::new(pb::StatsRequest::default());
        request.set_timeout(Duration::from_millis(20));
        let started = std::time::Instant::now();
        let status = client.stats(request).await.unwrap_err();
        assert_eq!((status.code(), status.message()), (tonic::Code::Cancelled, "Timeout expired"));
        assert!(started.elapsed() < Duration::from_millis(900), "the deadline cut the call short");
    }

    #[tokio::test]
    async fn a_nodes_error_arrives_without_its_in_process_source() {
        // Over the wire only code, message, details and metadata travel; the
        // source must not survive in-process either, or this error (the
        // node answered) would read as a refused connection (never sent).
        let (fake, _guard, mut client) = served("fake:3", 1 << 20);
        let status = client.execute(ops("fail", 1)).await.unwrap_err();
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        assert_eq!((status.code(), status.message()), (tonic::Code::Unavailable, "store gone"));
        assert!(std::error::Error::source(&status).is_none(), "{status:?}");
    }

    #[tokio::test]
    async fn the_message_size_limit_holds_both_ways() {
        let (fake, _guard, mut client) = served("fake:4", 200);
        let status = client.execute(ops("k", 100)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert!(status.message().contains("decoded message length too large"), "{status:?}");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 0, "an oversized request never reaches the handler");
        let status = client.execute(ops("big", 1)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert!(status.message().contains("encoded message length too large"), "{status:?}");
        assert_eq!(client.execute(ops("k", 10)).await.unwrap().into_inner().results.len(), 10);
    }

    #[tokio::test]
    async fn a_stopped_node_refuses_like_a_closed_port_until_it_serves_again() {
        let (_fake, guard, mut client) = served("fake:5", 1 << 20);
        drop(guard);
        let status = client.execute(ops("k", 1)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(refused_connection(&status), "callers can tell the request never arrived: {status:?}");
        let _again = serve_local("fake:5", Arc::new(Fake::default()), 1 << 20);
        assert_eq!(client.execute(ops("k", 2)).await.unwrap().into_inner().results.len(), 2, "the same client reaches the node that came back");
    }

    #[tokio::test]
    async fn a_port_reused_by_a_network_node_is_reached_over_the_network() {
        let (_fake, guard, _client) = served("127.0.0.1:7", 1 << 20);
        forget_local("127.0.0.1:7");
        assert!(crate::connect_lazy("127.0.0.1:7").unwrap().is_in_process(), "a serving slot is kept");
        drop(guard);
        forget_local("127.0.0.1:7");
        assert!(!crate::connect_lazy("127.0.0.1:7").unwrap().is_in_process(), "an empty one is forgotten");
    }

    #[tokio::test]
    async fn an_in_process_feed_is_the_nodes_own_stream() {
        use tokio_stream::StreamExt;
        let (_fake, guard, mut client) = served("fake:6", 1 << 20);
        let feed = client.pub_sub_feed(pb::FeedRequest::default()).await.unwrap();
        let channels: Vec<_> = feed.map(|m| m.unwrap().channel).collect().await;
        assert_eq!(channels, ["ch0", "ch1", "ch2"]);
        drop(guard);
        let status = client.pub_sub_feed(pb::FeedRequest::default()).await.err().expect("a stopped node refuses a feed");
        assert!(refused_connection(&status), "{status:?}");
    }

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
