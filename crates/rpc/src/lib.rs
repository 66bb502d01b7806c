//! evenkeel's internal RPC, generated from `proto/evenkeel.proto`.
//!
//! The data plane is [`NodeClient`] / [`pb::node_server::Node`]:
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

pub mod followed;
pub mod tls;
pub mod transport;

pub use tls::ClusterTls;

impl pb::op::Kind {
    /// How long a blocking pop (`LMPop`, `LMove`, `ZMPop`) or stream read
    /// (`Stream`: XREAD, XREADGROUP) may wait on its
    /// node for something to pop (see the proto's `LMPop`); 0 for every
    /// other op.
    pub fn blocking_wait_ms(&self) -> u64 {
        match self {
            pb::op::Kind::LMPop(m) => m.wait_ms,
            pb::op::Kind::ZMPop(m) => m.wait_ms,
            pb::op::Kind::LMove(m) => m.wait_ms,
            pb::op::Kind::Stream(m) => m.wait_ms,
            _ => 0,
        }
    }

    /// Sets [`Self::blocking_wait_ms`] and when the client's command began
    /// (Unix µs: its place among the key's waiters, see the proto's
    /// `LMPop`); false for an op that cannot block.
    pub fn set_blocking_wait(&mut self, ms: u64, since_us: u64) -> bool {
        match self {
            pb::op::Kind::LMPop(m) => (m.wait_ms, m.blocked_since_us) = (ms, since_us),
            pb::op::Kind::ZMPop(m) => (m.wait_ms, m.blocked_since_us) = (ms, since_us),
            pb::op::Kind::LMove(m) => (m.wait_ms, m.blocked_since_us) = (ms, since_us),
            pb::op::Kind::Stream(m) => (m.wait_ms, m.blocked_since_us) = (ms, since_us),
            _ => return false,
        }
        true
    }

    /// When a blocking op's command began (see [`Self::set_blocking_wait`]);
    /// 0 for every other op.
    pub fn blocked_since_us(&self) -> u64 {
        match self {
            pb::op::Kind::LMPop(m) => m.blocked_since_us,
            pb::op::Kind::ZMPop(m) => m.blocked_since_us,
            pb::op::Kind::LMove(m) => m.blocked_since_us,
            pb::op::Kind::Stream(m) => m.blocked_since_us,
            _ => 0,
        }
    }
}

/// A value type as the wire names it.
pub fn value_type(ty: evenkeel_types::ValueType) -> pb::ValueType {
    use evenkeel_types::ValueType as T;
    match ty {
        T::String => pb::ValueType::String,
        T::Hash => pb::ValueType::Hash,
        T::Set => pb::ValueType::Set,
        T::List => pb::ValueType::List,
        T::ZSet => pb::ValueType::Zset,
        T::Stream => pb::ValueType::Stream,
    }
}

/// A value type the wire names; None for a number this build does not
/// know.
pub fn value_type_from(raw: i32) -> Option<evenkeel_types::ValueType> {
    use evenkeel_types::ValueType as T;
    Some(match pb::ValueType::try_from(raw).ok()? {
        pb::ValueType::String => T::String,
        pb::ValueType::Hash => T::Hash,
        pb::ValueType::Set => T::Set,
        pb::ValueType::List => T::List,
        pb::ValueType::Zset => T::ZSet,
        pb::ValueType::Stream => T::Stream,
    })
}

pub use pb::node_server::{Node, NodeServer};
pub use transport::{Feed, LocalGuard, NodeClient, forget_local, request_timeout, serve_local};

/// A client for the node at `addr` (`host:port`). If a node of this process
/// serves `addr` in-process ([`serve_local`]), the client calls it directly;
/// otherwise it connects over TCP on first use and reconnects by itself.
/// Every caller (router, coordinator) uses the same network settings:
/// TCP_NODELAY (gRPC replies are several small frames), a 1 s connect
/// timeout, HTTP/2 keepalive, and no message size cap beyond the node's own.
pub fn connect_lazy(addr: &str) -> Result<NodeClient, tonic::transport::Error> {
    Ok(match transport::local_slot(addr) {
        Some(slot) => NodeClient::local(slot),
        None => NodeClient::remote(connect_remote(addr)?),
    })
}

fn connect_remote(addr: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let tls = CLUSTER_TLS.get();
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(std::time::Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(std::time::Duration::from_secs(10));
    Ok(match tls {
        // TLS is ours (tonic's takes a fixed identity): the connector
        // handshakes with the followed certificate and CA.
        Some(tls) => endpoint.connect_with_connector_lazy(tls.connector()),
        None => endpoint.connect_lazy(),
    })
}

static CLUSTER_TLS: std::sync::OnceLock<ClusterTls> = std::sync::OnceLock::new();

/// Sets this process's cluster TLS, once, before any node client or server
/// exists: a process belongs to one cluster, and every client
/// [`connect_lazy`] makes from then on uses it (in-process calls need
/// none). Err with the one already set if it differs.
pub fn set_cluster_tls(tls: ClusterTls) -> Result<(), String> {
    let set = CLUSTER_TLS.get_or_init(|| tls.clone());
    if *set == tls {
        Ok(())
    } else {
        Err("this process already has another cluster TLS configuration".into())
    }
}

/// This process's cluster TLS, if [`set_cluster_tls`] set one.
pub fn cluster_tls() -> Option<&'static ClusterTls> {
    CLUSTER_TLS.get()
}
