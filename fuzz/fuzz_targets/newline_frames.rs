//! Newline framing (`--framing newline`) as a TCP connection drives it: the
//! stream arrives in reads of the sizes the first bytes pick, the decoder
//! takes every whole frame after each read, and `decode_eof` the rest.
//! Every frame stays within `--max-frame-bytes`, and without an oversize
//! line the frames are the stream, byte for byte.
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
    let max = usize::from(max) + 1;
    let read = usize::from(read) % 16 + 1;
    let mut decoder = FrameDecoder::new(Framing::Newline, max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in stream.chunks(read) {
        buf.extend_from_slice(chunk);
        take(&mut frames, || decoder.decode(&mut buf).unwrap());
    }
    take(&mut frames, || decoder.decode_eof(&mut buf).unwrap());
    let mut joined = Vec::new();
    let mut oversize = false;
    for frame in frames {
        match frame {
            Frame::Lines(lines) => {
                assert!(lines.ends_with(b"\n"), "{lines:?}");
                for line in lines.split_inclusive(|&b| b == b'\n') {
                    assert!(line.len() - 1 <= max, "a line over the limit");
                }
                joined.extend_from_slice(&lines);
            }
            Frame::One(line) => {
                assert!(line.len() <= max && !line.contains(&b'\n'), "{line:?}");
                joined.extend_from_slice(&line);
            }
            Frame::Oversize(_, head) => {
                assert!(head.len() <= max + read + 1);
                oversize = true;
            }
            Frame::Truncated(..) => panic!("newline framing has no truncated frame"),
        }
    }
    if !oversize {
        assert_eq!(joined, stream, "frames lost or changed bytes");
    }
});
