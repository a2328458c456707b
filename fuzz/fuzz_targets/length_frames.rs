//! Length-delimited framing (`--framing length-delimited`: a 4-byte
//! big-endian length, then the frame, through tokio-util's
//! `LengthDelimitedCodec`) as a TCP connection drives it: reads of the
//! sizes the first bytes pick, every whole frame taken after each, then
//! `decode_eof`. Every frame is within `--max-frame-bytes`, a truncated one
//! comes only last, and with neither oversize nor truncated frames the
//! frames and their prefixes are the stream, byte for byte.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use streamer_fuzz::codec::{Frame, FrameDecoder, Framing};
use streamer_fuzz::take_frames as take;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&[max, read], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = usize::from(max);
    let read = usize::from(read) % 16 + 1;
    let mut decoder = FrameDecoder::new(Framing::LengthDelimited, max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in stream.chunks(read) {
        buf.extend_from_slice(chunk);
        take(&mut frames, || decoder.decode(&mut buf).unwrap());
    }
    take(&mut frames, || decoder.decode_eof(&mut buf).unwrap());
    let mut joined = Vec::new();
    let mut whole = true;
    for (index, frame) in frames.iter().enumerate() {
        match frame {
            Frame::One(body) => {
                assert!(body.len() <= max, "a frame over the limit");
                joined.extend_from_slice(&(body.len() as u32).to_be_bytes());
                joined.extend_from_slice(body);
            }
            Frame::Oversize(_, head) => {
                assert!(head.len() <= stream.len());
                whole = false;
            }
            Frame::Truncated(_, rest) => {
                assert_eq!(index, frames.len() - 1, "a truncated frame before the end");
                assert!(rest.len() <= stream.len());
                whole = false;
            }
            Frame::Lines(_) => panic!("length-delimited framing gives no lines"),
        }
    }
    if whole {
        assert_eq!(joined, stream, "frames lost or changed bytes");
    }
});
