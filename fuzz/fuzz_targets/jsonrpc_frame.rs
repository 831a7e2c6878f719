//! The stdio JSON-RPC framing (rmcp's line codec, with the messages a server
//! reads). Input: raw bytes; the first byte picks where to cut them in two.
//!
//! Invariants: nothing panics; what is decoded does not depend on how the
//! bytes arrive (whole, or in two reads); every decoded message, written
//! back out, decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::async_rw::JsonRpcMessageCodec;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

fn decode(chunks: &[&[u8]]) -> Vec<Result<String, ()>> {
    let mut codec = JsonRpcMessageCodec::<ClientJsonRpcMessage>::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut step = |buf: &mut BytesMut, eof: bool, out: &mut Vec<Result<String, ()>>| loop {
        let before = buf.len();
        let r = if eof { codec.decode_eof(buf) } else { codec.decode(buf) };
        match r {
            Ok(Some(m)) => out.push(Ok(serde_json::to_string(&m).expect("a message serializes"))),
            Ok(None) => break,
            Err(_) => {
                out.push(Err(()));
                if buf.len() == before {
                    break;
                }
            }
        }
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        step(&mut buf, false, &mut out);
    }
    step(&mut buf, true, &mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let whole = decode(&[data]);
    let split = decode(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole, split, "framing depends on how the bytes arrive");
    for message in whole.into_iter().flatten() {
        let again = decode(&[format!("{message}\n").as_bytes()]);
        assert_eq!(again, vec![Ok(message.clone())], "a message does not survive a round trip");
    }
});
