//! Property tests for both decoders, and an end-to-end exchange through
//! tokio's framed streams.

use bytes::{Bytes, BytesMut};
use evenkeel_resp::{
    Frame, FrameDecoder, Limits, ProtocolError, ReplyEncoder, RequestDecoder, encode_command,
};
use futures::{SinkExt, StreamExt};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, FramedRead, FramedWrite};

/// Everything a decoder produced from a byte stream, in a comparable form.
#[derive(Debug, PartialEq)]
struct Outcome<T> {
    items: Vec<T>,
    /// The reply text of the error that ended decoding, if any.
    error: Option<String>,
}

/// Decodes every item currently in `buf`, checking that each item consumes
/// input (so a caller looping on `decode` can never spin forever).
fn drain<D>(dec: &mut D, buf: &mut BytesMut, items: &mut Vec<D::Item>) -> Result<(), ProtocolError>
where
    D: Decoder<Error = ProtocolError>,
{
    loop {
        let before = buf.len();
        match dec.decode(buf)? {
            Some(item) => {
                assert!(
                    buf.len() < before,
                    "an item was produced without consuming input"
                );
                items.push(item);
            }
            None => return Ok(()),
        }
    }
}

/// Feeds `input` to `dec` in chunks of the given sizes (the rest in one last chunk).
fn feed<D>(mut dec: D, input: &[u8], chunks: &[usize]) -> Outcome<D::Item>
where
    D: Decoder<Error = ProtocolError>,
{
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = input;
    let sizes = chunks.iter().copied().chain(std::iter::once(usize::MAX));
    for size in sizes {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        buf.extend_from_slice(chunk);
        rest = tail;
        if let Err(e) = drain(&mut dec, &mut buf, &mut items) {
            return Outcome {
                items,
                error: Some(e.reply_text()),
            };
        }
        if rest.is_empty() {
            break;
        }
    }
    Outcome { items, error: None }
}

fn small_limits() -> Limits {
    Limits {
        max_bulk_len: 16,
        max_args: 4,
        max_inline_len: 24,
    }
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![Just(small_limits()), Just(Limits::default())]
}

/// Byte strings that look enough like RESP to reach deep parser states:
/// token soup, valid encodings with a few bytes changed, and plain noise.
fn protocolish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => token_soup(),
        3 => mutated_encoding(),
        1 => vec(any::<u8>(), 0..300),
    ]
}

fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        b"*", b"$", b"+", b"-", b":", b"\r\n", b"\r", b"\n", b"-1", b"0", b" ", b"\"", b"'", b"\\",
        b"\\x4", b"\0",
    ];
    let token = prop_oneof![
        4 => proptest::sample::select(fixed).prop_map(<[u8]>::to_vec),
        2 => (0u32..40).prop_map(|n| n.to_string().into_bytes()),
        2 => (-2i32..20, any::<bool>())
            .prop_map(|(n, array)| format!("{}{n}\r\n", if array { '*' } else { '$' }).into_bytes()),
        1 => vec(any::<u8>(), 1..6),
    ];
    vec(token, 0..80).prop_map(|parts| parts.concat())
}

/// Encoded commands followed by encoded reply frames, with a few bytes
/// replaced, inserted or removed.
fn mutated_encoding() -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<proptest::sample::Index>(), any::<u8>(), 0u8..3);
    (vec(command(), 0..4), vec(frame(), 0..3), vec(edit, 0..4)).prop_map(
        |(commands, frames, edits)| {
            let mut wire = BytesMut::new();
            for cmd in &commands {
                let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
                encode_command(&args, &mut wire);
            }
            for f in &frames {
                f.encode(&mut wire);
            }
            let mut wire = wire.to_vec();
            for (at, byte, kind) in edits {
                if wire.is_empty() {
                    break;
                }
                let i = at.index(wire.len());
                match kind {
                    0 => wire[i] = byte,
                    1 => wire.insert(i, byte),
                    _ => {
                        wire.remove(i);
                    }
                }
            }
            wire
        },
    )
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(1usize..40, 0..60)
}

/// Text for simple strings and errors, which cannot contain CR or LF.
fn line_text() -> impl Strategy<Value = String> {
    "[^\r\n]{0,20}"
}

fn frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_text().prop_map(Frame::Simple),
        line_text().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        vec(any::<u8>(), 0..40).prop_map(|v| Frame::Bulk(Bytes::from(v))),
        Just(Frame::Null),
        Just(Frame::NullArray),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| vec(inner, 0..8).prop_map(Frame::Array))
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(vec(any::<u8>(), 0..40), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_decoder_survives_garbage(
        input in protocolish(),
        chunks in chunk_sizes(),
        limits in limits(),
    ) {
        let chunked = feed(RequestDecoder::new(limits), &input, &chunks);
        let whole = feed(RequestDecoder::new(limits), &input, &[]);
        // How the bytes were split across reads must not change the result.
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn frame_decoder_survives_garbage(input in protocolish(), chunks in chunk_sizes()) {
        let chunked = feed(FrameDecoder, &input, &chunks);
        let whole = feed(FrameDecoder, &input, &[]);
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn frames_round_trip(frames in vec(frame(), 1..6), chunks in chunk_sizes()) {
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire);
        }
        let outcome = feed(FrameDecoder, &wire, &chunks);
        prop_assert_eq!(outcome, Outcome { items: frames, error: None });
    }

    #[test]
    fn commands_round_trip(commands in vec(command(), 1..6), chunks in chunk_sizes()) {
        let mut wire = BytesMut::new();
        for cmd in &commands {
            let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            encode_command(&args, &mut wire);
        }
        let outcome = feed(RequestDecoder::default(), &wire, &chunks);
        let decoded: Vec<Vec<Vec<u8>>> = outcome
            .items
            .iter()
            .map(|args| args.iter().map(|a| a.to_vec()).collect())
            .collect();
        prop_assert_eq!(outcome.error, None);
        prop_assert_eq!(decoded, commands);
    }
}

/// A miniature server: echoes each command back as an array of bulk
/// strings, and on a protocol error sends the Redis error text and closes.
async fn echo_server(stream: tokio::io::DuplexStream) {
    let (read, write) = tokio::io::split(stream);
    let mut requests = FramedRead::new(read, RequestDecoder::default());
    let mut replies = FramedWrite::new(write, ReplyEncoder);
    while let Some(request) = requests.next().await {
        let reply = match request {
            Ok(args) => Frame::Array(args.into_iter().map(Frame::Bulk).collect()),
            Err(e) => {
                let _ = replies.send(Frame::error(e.reply_text())).await;
                break;
            }
        };
        if replies.send(&reply).await.is_err() {
            break;
        }
    }
    // ReplyEncoder encodes both `Frame` and `&Frame`, so item-agnostic sink
    // calls need the item type spelled out.
    let _ = SinkExt::<Frame>::close(&mut replies).await;
}

#[tokio::test]
async fn end_to_end_over_framed_streams() {
    let (client, server) = tokio::io::duplex(64);
    let server = tokio::spawn(echo_server(server));
    let (read, mut write) = tokio::io::split(client);
    let mut replies = FramedRead::new(read, FrameDecoder);

    let big = vec![b'v'; 10_000];
    let mut wire = BytesMut::new();
    encode_command(&[b"SET", b"k\r\n\0", &big], &mut wire);
    wire.extend_from_slice(b"PING \"a b\"\r\n*1\r\n!oops\r\n");
    // Write from a separate task: the pipe is tiny, so the server's replies
    // must be read while the request is still being written.
    let writer = tokio::spawn(async move {
        write.write_all(&wire).await.unwrap();
        write
    });

    let first = replies.next().await.unwrap().unwrap();
    let expected = Frame::array(vec![
        Frame::bulk("SET"),
        Frame::bulk(&b"k\r\n\0"[..]),
        Frame::bulk(big),
    ]);
    assert_eq!(first, expected);
    let second = replies.next().await.unwrap().unwrap();
    assert_eq!(
        second,
        Frame::array(vec![Frame::bulk("PING"), Frame::bulk("a b")])
    );
    let third = replies.next().await.unwrap().unwrap();
    assert_eq!(
        third,
        Frame::error("ERR Protocol error: expected '$', got '!'")
    );
    // The server closes after a protocol error.
    assert!(replies.next().await.is_none());
    server.await.unwrap();
    writer.await.unwrap();
}

#[tokio::test]
async fn oversized_bulk_is_refused_without_waiting_for_the_payload() {
    let (mut client, server) = tokio::io::duplex(1024);
    let server = tokio::spawn(echo_server(server));
    client
        .write_all(b"*2\r\n$3\r\nGET\r\n$999999999999\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, b"-ERR Protocol error: invalid bulk length\r\n");
    server.await.unwrap();
}
