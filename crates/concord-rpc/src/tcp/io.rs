//! Frames over a socket: a cancel-safe frame reader, the writer loop that owns a socket's
//! write half, and the signal that closes a connection's tasks together.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::frame::{self, Frame, FrameError};

/// A peer that does not take a frame's bytes within this long is treated as gone: without it a
/// peer that stops reading would hold its connection's tasks forever.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

const READ_CHUNK_BYTES: usize = 16 * 1024;
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Why reading a frame failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer broke the protocol: the connection is rejected.
    Frame(FrameError),
    /// The socket failed (reset, ...): the connection is gone, nobody is at fault.
    Io(io::Error),
}

impl From<FrameError> for ReadError {
    fn from(error: FrameError) -> Self {
        ReadError::Frame(error)
    }
}

/// Reads frames from a socket. Every byte read lives in `buf` until a whole frame is there, so
/// [`FrameReader::read_frame`] can be cancelled (in a `select!`) without losing data.
pub(crate) struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
    max_payload_bytes: u32,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(reader: R, max_payload_bytes: u32) -> Self {
        FrameReader { reader, buf: BytesMut::with_capacity(READ_CHUNK_BYTES), max_payload_bytes }
    }

    /// The next frame; `Ok(None)` when the peer closed the connection between frames.
    pub(crate) async fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = frame::decode_frame(&mut self.buf, self.max_payload_bytes)? {
                return Ok(Some(frame));
            }
            // Grow with the bytes that actually arrive, not with the length a header claims: a
            // peer that announces 16 MiB and sends nothing must not cost 16 MiB.
            self.buf.reserve(READ_CHUNK_BYTES);
            let read = self.reader.read_buf(&mut self.buf).await.map_err(ReadError::Io)?;
            if read == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let need = frame::bytes_needed(&self.buf);
                return Err(FrameError::Truncated { have: self.buf.len(), need }.into());
            }
        }
    }
}

/// A frame waiting for the writer, and the earliest time it may go (a fault-injected delay).
pub(crate) struct OutFrame {
    pub(crate) bytes: Bytes,
    pub(crate) not_before: Option<Instant>,
}

impl OutFrame {
    pub(crate) fn new(frame: &Frame, delay: Option<Duration>) -> Self {
        OutFrame { bytes: frame.encode(), not_before: delay.map(|delay| Instant::now() + delay) }
    }
}

/// Writes queued frames in order until every sender is gone or `close` fires, then shuts the
/// write half down (the peer sees end of stream). Batches frames that queue up behind each other
/// into one flush.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(
    writer: W,
    mut queue: mpsc::Receiver<OutFrame>,
    close: CloseSignal,
) -> io::Result<()> {
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, writer);
    loop {
        let frame = tokio::select! {
            frame = queue.recv() => frame,
            () = close.closed() => None,
        };
        let Some(frame) = frame else { break };
        if let Some(at) = frame.not_before {
            tokio::time::sleep_until(at).await;
        }
        let write = async {
            writer.write_all(&frame.bytes).await?;
            if queue.is_empty() {
                writer.flush().await?;
            }
            Ok::<(), io::Error>(())
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading")),
        }
    }
    // Best effort: the peer may be gone already.
    let _ = tokio::time::timeout(WRITE_TIMEOUT, writer.shutdown()).await;
    Ok(())
}

/// Closes every task of one connection at once. Cloned into each task; whichever sees the
/// connection end first fires it.
#[derive(Clone, Debug)]
pub(crate) struct CloseSignal(Arc<watch::Sender<bool>>);

impl CloseSignal {
    pub(crate) fn new() -> Self {
        CloseSignal(Arc::new(watch::Sender::new(false)))
    }

    pub(crate) fn close(&self) {
        self.0.send_replace(true);
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once [`CloseSignal::close`] has been called.
    pub(crate) async fn closed(&self) {
        let mut receiver = self.0.subscribe();
        // The sender lives in `self`, so waiting cannot fail.
        let _ = receiver.wait_for(|closed| *closed).await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::MessageKind;
    use crate::frame::{FrameType, HEADER_LEN};

    fn frame(payload: &'static [u8]) -> Frame {
        Frame {
            kind: MessageKind::Swim,
            frame_type: FrameType::OneWay,
            request_id: 0,
            payload: Bytes::from_static(payload),
        }
    }

    #[tokio::test]
    async fn frames_split_across_reads_are_reassembled() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, 1024);
        let bytes = frame(b"hello, world").encode();
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(5) {
                client.write_all(chunk).await.unwrap();
                client.flush().await.unwrap();
            }
            client
        });
        assert_eq!(reader.read_frame().await.unwrap(), Some(frame(b"hello, world")));
        drop(writer.await.unwrap());
        assert!(matches!(reader.read_frame().await, Ok(None)));
    }

    #[tokio::test]
    async fn end_of_stream_inside_a_frame_is_truncation() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, 1024);
        let bytes = frame(b"abcdef").encode();
        client.write_all(&bytes[..HEADER_LEN + 2]).await.unwrap();
        drop(client);
        match reader.read_frame().await {
            Err(ReadError::Frame(FrameError::Truncated { have, need })) => {
                assert_eq!((have, need), (HEADER_LEN + 2, HEADER_LEN + 6));
            }
            other => panic!("expected truncation, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_writer_sends_in_order_and_ends_the_stream() {
        let (client, server) = tokio::io::duplex(1024);
        let (tx, rx) = mpsc::channel(4);
        let writer = tokio::spawn(write_frames(client, rx, CloseSignal::new()));
        tx.send(OutFrame::new(&frame(b"1"), None)).await.unwrap();
        tx.send(OutFrame::new(&frame(b"2"), Some(Duration::from_millis(1)))).await.unwrap();
        drop(tx);
        let mut reader = FrameReader::new(server, 1024);
        assert_eq!(reader.read_frame().await.unwrap(), Some(frame(b"1")));
        assert_eq!(reader.read_frame().await.unwrap(), Some(frame(b"2")));
        assert!(matches!(reader.read_frame().await, Ok(None)));
        writer.await.unwrap().unwrap();
    }
}
