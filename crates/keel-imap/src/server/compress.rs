//! COMPRESS=DEFLATE (RFC 4978): raw DEFLATE (RFC 1951) in both directions after the tagged
//! OK, each server write ended by a sync flush (RFC 4978 §4) so the client can decode it
//! at once.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Both directions of an active COMPRESS layer.
pub(crate) struct Deflate {
    out: Compress,
    inp: Decompress,
}

const CHUNK: usize = 16 * 1024;

impl Deflate {
    pub(crate) fn new() -> Self {
        Self {
            // RFC 4978 §3: raw deflate, no zlib header.
            out: Compress::new(Compression::default(), false),
            inp: Decompress::new(false),
        }
    }

    /// Compresses one write, ending with a sync flush.
    pub(crate) fn compress(&mut self, mut data: &[u8]) -> Result<Vec<u8>, flate2::CompressError> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        loop {
            out.reserve(CHUNK);
            let before = self.out.total_in();
            self.out.compress_vec(data, &mut out, FlushCompress::Sync)?;
            let used = usize::try_from(self.out.total_in() - before).unwrap_or(data.len());
            data = data.get(used..).unwrap_or_default();
            if data.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }

    /// Decompresses received bytes (possibly a partial stream): calls the inflater until
    /// it neither consumes input nor produces output.
    pub(crate) fn decompress(
        &mut self,
        mut data: &[u8],
    ) -> Result<Vec<u8>, flate2::DecompressError> {
        let mut out = Vec::with_capacity(data.len() * 2 + 64);
        loop {
            out.reserve(CHUNK);
            let (before_in, before_out) = (self.inp.total_in(), self.inp.total_out());
            let status = self
                .inp
                .decompress_vec(data, &mut out, FlushDecompress::Sync)?;
            let used = usize::try_from(self.inp.total_in() - before_in).unwrap_or(data.len());
            data = data.get(used..).unwrap_or_default();
            let produced = self.inp.total_out() != before_out;
            if (used == 0 && !produced) || status == Status::StreamEnd {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_sync_flush() {
        let mut server = Deflate::new();
        let mut client = Deflate::new();
        let big = "* 1 FETCH (FLAGS (\\Seen))\r\n".repeat(5000);
        for msg in ["a1 OK done\r\n", big.as_str()] {
            let wire = server.compress(msg.as_bytes()).unwrap();
            // Fed in two halves, as a socket may deliver it.
            let (x, y) = wire.split_at(wire.len() / 2);
            let mut got = client.decompress(x).unwrap();
            got.extend(client.decompress(y).unwrap());
            assert_eq!(got.len(), msg.len(), "wire {}", wire.len());
            assert!(got == msg.as_bytes(), "content differs");
        }
    }
}
