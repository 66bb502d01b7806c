//! evenkeel's internal RPC, generated from `proto/evenkeel.proto`.
//!
//! The data plane is [`pb::node_client::NodeClient`] / [`pb::node_server::Node`]:
//! the router sends batches of single-key [`pb::Op`]s stamped with its routing
//! epoch and gets one [`pb::OpResult`] per op. Refusals (`not_owner`,
//! `stale_epoch`, `fenced`, `not_ready`, `overloaded`) are part of the
//! protocol: a refused op was not executed, so the router retries it (after
//! refreshing its routing table, for the first four) within its retry
//! budget; they never reach a client while the budget lasts.

#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("evenkeel.v1");
}

pub mod transport;

pub use pb::node_server::{Node, NodeServer};
pub use transport::{LocalGuard, LocalService, Transport, request_timeout, serve_local};

/// A client of one node's `Node` service, over the network or in-process.
pub type NodeClient = pb::node_client::NodeClient<Transport>;

/// A client for the node at `addr` (`host:port`). If a node of this process
/// serves `addr` in-process ([`serve_local`]), the client calls it directly;
/// otherwise it connects over TCP on first use and reconnects by itself.
/// Every caller (router, coordinator) uses the same network settings:
/// TCP_NODELAY (gRPC replies are several small frames), a 1 s connect
/// timeout, HTTP/2 keepalive, and no message size cap beyond the node's own.
pub fn connect_lazy(addr: &str) -> Result<NodeClient, tonic::transport::Error> {
    let transport = match transport::local_slot(addr) {
        Some(slot) => Transport::Local(slot),
        None => Transport::Remote(connect_remote(addr)?),
    };
    Ok(NodeClient::new(transport).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX))
}

fn connect_remote(addr: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(std::time::Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(std::time::Duration::from_secs(10));
    Ok(endpoint.connect_lazy())
}
