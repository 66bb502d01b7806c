//! evenkeel's internal RPC, generated from `proto/evenkeel.proto`.
//!
//! The data plane is [`pb::node_client::NodeClient`] / [`pb::node_server::Node`]:
//! the router sends batches of single-key [`pb::Op`]s stamped with its routing
//! epoch and gets one [`pb::OpResult`] per op. Refusals (`not_owner`,
//! `stale_epoch`, `fenced`) are part of the protocol: the router refreshes its
//! routing table and retries them; they never reach a client.

#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("evenkeel.v1");
}

pub use pb::node_client::NodeClient;
pub use pb::node_server::{Node, NodeServer};
