//! A scripted RESP server for tests of the bench (its own and the
//! integration tests'): every request, decoded into its arguments, is
//! answered by a function of them. Not part of the bench's interface.

use bytes::{Bytes, BytesMut};
use evenkeel_resp::{Frame, RequestDecoder};
use futures::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

/// Serves on an ephemeral loopback port until the task is aborted (or the
/// runtime ends), answering each request with `answer(args)`.
pub async fn serve(answer: impl Fn(&[Bytes]) -> Frame + Send + Sync + 'static) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    let answer = Arc::new(answer);
    let server = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = socket.into_split();
                let mut requests = FramedRead::new(rd, RequestDecoder::default());
                while let Some(Ok(args)) = requests.next().await {
                    let mut out = BytesMut::new();
                    answer(&args).encode(&mut out);
                    if wr.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, server)
}
