//! Content codings paid once per entry: a body is compressed when its
//! entry is rendered, not on each answer.
//!
//! An answer's body is a long head that is the same for every answer of an
//! entry (`{"wallet":…,"positions":[…],"computed_at":"…"`) and a short tail
//! that is not (`,"cached":…,"stale":…,"age_seconds":…}`). The head is
//! compressed once, into a stream that is left open and byte-aligned; each
//! answer sends those bytes as they are, then closes the stream with the
//! tail in a block that is stored, not compressed, which costs a few bytes
//! of framing and no compression work:
//!
//! - **gzip** (RFC 1952 around RFC 1951 deflate): the head is deflated and
//!   *sync-flushed* (it ends on a byte boundary with an empty stored block,
//!   and is not final). An answer is the fixed 10-byte gzip header, those
//!   bytes, a final stored block holding the tail (`01`, its length and the
//!   length's complement, the tail), then the CRC-32 of head and tail
//!   (continued from the head's, kept with the entry) and their length.
//! - **br** (RFC 7932 Brotli): the head is compressed and *flushed* (the
//!   encoder pads to a byte boundary, not last), at the first answer that
//!   asks for `br`. An answer is those bytes,
//!   an uncompressed meta-block holding the tail (three header bytes), and
//!   an empty last meta-block (`03`).
//!
//! A decoder sees one ordinary stream, and decodes exactly the identity
//! body: the tests check that with `flate2` and `brotli` here, with curl
//! and Python in the system tests, and with headless Chromium in the
//! binary's `tests/browser.rs`.
//!
//! Which coding an answer gets follows the request's `Accept-Encoding`
//! ([`negotiate`]): the acceptable coding with the highest q-value, `br`
//! before `gzip` before `identity` on a tie.

use std::io::Write;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

/// Bodies whose head is shorter than this are never compressed: the
/// framing would eat most of the gain, and small answers are cheap anyway.
pub const MIN_COMPRESSED_HEAD: usize = 256;

/// How a body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is.
    Identity,
    /// `Content-Encoding: gzip`.
    Gzip,
    /// `Content-Encoding: br`.
    Brotli,
}

impl Encoding {
    /// The `Content-Encoding` value, `None` for identity.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Self::Identity => None,
            Self::Gzip => Some("gzip"),
            Self::Brotli => Some("br"),
        }
    }
}

/// What the request accepts: the acceptable coding with the highest
/// q-value (ties go to `br`, then `gzip`, then `identity`), or `None` if
/// it accepts none of them (`identity;q=0` alone, or `*;q=0`).
///
/// No `Accept-Encoding` at all means identity. An unknown coding, or a
/// q-value that does not parse, is ignored; several headers are read as
/// one list.
pub fn negotiate(headers: &HeaderMap) -> Option<Encoding> {
    let mut values = headers.get_all(ACCEPT_ENCODING).iter().peekable();
    if values.peek().is_none() {
        return Some(Encoding::Identity);
    }
    // q-values in thousandths; None = not mentioned.
    let (mut br, mut gzip, mut identity, mut any) = (None, None, None, None);
    for value in values {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let mut q = Some(1000);
            for parameter in parts {
                let (name, weight) = parameter.split_once('=').unwrap_or((parameter, ""));
                if name.trim().eq_ignore_ascii_case("q") {
                    q = qvalue(weight.trim());
                }
            }
            let Some(q) = q else { continue };
            let is = |name: &str| coding.eq_ignore_ascii_case(name);
            let slot = if is("br") {
                &mut br
            } else if is("gzip") || is("x-gzip") {
                &mut gzip
            } else if is("identity") {
                &mut identity
            } else if coding == "*" {
                &mut any
            } else {
                continue;
            };
            *slot = Some(slot.map_or(q, |previous: u16| previous.max(q)));
        }
    }
    // Codings not named take `*`'s weight; identity is acceptable unless
    // refused by name or by `*;q=0`.
    let br = br.or(any).unwrap_or(0);
    let gzip = gzip.or(any).unwrap_or(0);
    let identity = identity.or(any.filter(|&q| q == 0)).unwrap_or(1);
    [(Encoding::Brotli, br), (Encoding::Gzip, gzip), (Encoding::Identity, identity)]
        .into_iter()
        .filter(|&(_, q)| q > 0)
        .reduce(|best, next| if next.1 > best.1 { next } else { best })
        .map(|(encoding, _)| encoding)
}

/// An RFC 9110 qvalue (`0`, `0.5`, `1.000`) in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths =
        fraction.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0, |n, b| n * 10 + u16::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// A head compressed once, ready to be closed by any tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Raw deflate of the head, sync-flushed, not final.
    deflate: Bytes,
    /// CRC-32 of the head.
    crc: u32,
    /// Length of the head.
    head_len: usize,
    /// Brotli of the head, flushed, not last: made at the first answer
    /// that asks for it (once per entry, like the deflate stream, but
    /// only for entries some client wants in `br`, and never stored in
    /// tier 2, which keeps the deflate stream alone).
    brotli: OnceLock<Bytes>,
}

/// The gzip header: magic, deflate, no flags, no time, no extra flags, an
/// unknown operating system.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl Packed {
    /// Compresses `head` both ways, or `None` if it is below
    /// [`MIN_COMPRESSED_HEAD`].
    ///
    /// # Panics
    ///
    /// Never in practice: compressing into memory cannot fail.
    pub fn new(head: &[u8]) -> Option<Self> {
        if head.len() < MIN_COMPRESSED_HEAD {
            return None;
        }
        let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        deflate.write_all(head).expect("deflate into memory");
        deflate.flush().expect("a sync flush into memory");
        let mut deflate = deflate.get_ref().clone();
        deflate.shrink_to_fit();
        Some(Self {
            deflate: deflate.into(),
            crc: crc32fast::hash(head),
            head_len: head.len(),
            brotli: OnceLock::new(),
        })
    }

    /// The Brotli stream of `head` (the head this was made from), made
    /// the first time it is asked for.
    fn brotli(&self, head: &[u8]) -> Bytes {
        self.brotli
            .get_or_init(|| {
                let mut brotli = brotli::CompressorWriter::new(Vec::new(), 4096, 9, 22);
                brotli.write_all(head).expect("brotli into memory");
                brotli.flush().expect("a brotli flush into memory");
                let mut brotli = brotli.get_ref().clone();
                brotli.shrink_to_fit();
                Bytes::from(brotli)
            })
            .clone()
    }

    /// What is kept of it elsewhere (tier 2) and brought back by
    /// [`unpack`](Self::unpack): the deflate stream and the head's CRC-32.
    pub fn parts(&self) -> (&[u8], u32) {
        (&self.deflate, self.crc)
    }

    /// Brings back what [`parts`](Self::parts) gave, with the head it
    /// compresses (inflated, and checked against the CRC-32), or `None` if
    /// the parts are not a sync-flushed deflate stream of a head with that
    /// CRC, at most `max_head` bytes long.
    pub fn unpack(deflate: Vec<u8>, crc: u32, max_head: usize) -> Option<(Self, Vec<u8>)> {
        let mut inflate = flate2::Decompress::new(false);
        let mut head = Vec::with_capacity(deflate.len() * 4);
        loop {
            let consumed = usize::try_from(inflate.total_in()).ok()?;
            if head.len() == head.capacity() {
                head.reserve(head.len().max(1024));
            }
            let produced = head.len();
            let status = inflate.decompress_vec(&deflate[consumed..], &mut head, flate2::FlushDecompress::Sync).ok()?;
            let now_consumed = usize::try_from(inflate.total_in()).ok()?;
            if head.len() > max_head || status == flate2::Status::StreamEnd {
                return None;
            }
            if now_consumed == deflate.len() && head.len() < head.capacity() {
                break;
            }
            if now_consumed == consumed && head.len() == produced && head.len() < head.capacity() {
                // No progress with room to spare: the input is cut short.
                return None;
            }
        }
        if crc32fast::hash(&head) != crc || head.len() < MIN_COMPRESSED_HEAD {
            return None;
        }
        let packed = Self { deflate: deflate.into(), crc, head_len: head.len(), brotli: OnceLock::new() };
        Some((packed, head))
    }

    /// The bytes this keeps in memory.
    pub fn heap_bytes(&self) -> usize {
        self.deflate.len() + self.brotli.get().map_or(0, Bytes::len)
    }

    /// The body for `tail` in `encoding` (not identity) as three chunks:
    /// what comes before the shared compressed head, the head, what comes
    /// after it. `head` is the head this was made from.
    ///
    /// # Panics
    ///
    /// If `tail` is 64 KiB or more (tails are a few dozen bytes), or if
    /// `encoding` is identity.
    pub fn body(&self, encoding: Encoding, head: &[u8], tail: &[u8]) -> [Bytes; 3] {
        let len = u16::try_from(tail.len()).expect("a tail under 64 KiB");
        match encoding {
            Encoding::Gzip => {
                let mut after = BytesMut::with_capacity(tail.len() + 13);
                after.put_u8(0x01); // final, stored
                after.put_u16_le(len);
                after.put_u16_le(!len);
                after.put_slice(tail);
                let mut crc = crc32fast::Hasher::new_with_initial(self.crc);
                crc.update(tail);
                after.put_u32_le(crc.finalize());
                // ISIZE is the length modulo 2^32.
                let size = (self.head_len + tail.len()) as u64;
                after.put_slice(&size.to_le_bytes()[..4]);
                [Bytes::from_static(&GZIP_HEADER), self.deflate.clone(), after.freeze()]
            }
            Encoding::Brotli => {
                let mut after = BytesMut::with_capacity(tail.len() + 4);
                // ISLAST 0, MNIBBLES 4 (coded 0), MLEN - 1 in 16 bits,
                // ISUNCOMPRESSED 1, then zeros to the byte boundary. (A
                // meta-block holds at least one byte: no tail, no block.)
                if let Some(last) = u32::from(len).checked_sub(1) {
                    let header = last << 3 | 1 << 19;
                    after.put_slice(&header.to_le_bytes()[..3]);
                    after.put_slice(tail);
                }
                after.put_u8(0x03); // ISLAST 1, ISLASTEMPTY 1
                [Bytes::new(), self.brotli(head), after.freeze()]
            }
            Encoding::Identity => panic!("identity is not packed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use http::HeaderValue;

    use super::*;

    fn accepting(values: &[&str]) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        negotiate(&headers)
    }

    #[test]
    fn the_best_acceptable_coding_wins() {
        use Encoding::{Brotli, Gzip, Identity};
        let cases: [(&[&str], Option<Encoding>); 16] = [
            (&[], Some(Identity)),
            (&[""], Some(Identity)),
            (&["gzip"], Some(Gzip)),
            (&["gzip, deflate, br"], Some(Brotli)),
            (&["gzip;q=1.0, br;q=0.5"], Some(Gzip)),
            (&["br;q=0"], Some(Identity)),
            (&["identity;q=0"], None),
            (&["identity;q=0, gzip;q=0.1"], Some(Gzip)),
            (&["*;q=0"], None),
            (&["*;q=0, identity"], Some(Identity)),
            (&["*"], Some(Brotli)),
            (&["*;q=0.5, gzip;q=0.8"], Some(Gzip)),
            (&["GZIP ; Q=0.3", "br;q=0.2"], Some(Gzip)),
            (&["gzip;q=2"], Some(Identity)),
            (&["compress, deflate"], Some(Identity)),
            (&["gzip;q=0.001, identity;q=0.0005"], Some(Gzip)),
        ];
        for (values, expected) in cases {
            assert_eq!(accepting(values), expected, "{values:?}");
        }
    }

    #[test]
    fn qvalues_parse_as_rfc_9110_writes_them() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.125"), Some(125));
        assert_eq!(qvalue("0"), Some(0));
        for bad in ["1.5", "0.1234", "2", "", "x", ".5", "0.-1"] {
            assert_eq!(qvalue(bad), None, "{bad}");
        }
    }

    fn head() -> Vec<u8> {
        let positions: Vec<String> =
            (0..20).map(|i| format!(r#"{{"token":"0x{i:040x}","symbol":"T{i}","quantity":"{i}.5"}}"#)).collect();
        format!(r#"{{"wallet":"0xabc","positions":[{}],"computed_at":"2026-11-30T20:00:00Z""#, positions.join(","))
            .into_bytes()
    }

    fn concat(parts: &[Bytes; 3]) -> Vec<u8> {
        parts.iter().flat_map(|part| part.iter().copied()).collect()
    }

    #[test]
    fn every_coding_decodes_to_head_and_tail_exactly() {
        let head = head();
        let packed = Packed::new(&head).expect("long enough");
        for tail in [&b",\"cached\":true,\"stale\":false,\"age_seconds\":7}"[..], b"}", b""] {
            let expected: Vec<u8> = head.iter().chain(tail).copied().collect();

            let gzip = concat(&packed.body(Encoding::Gzip, &head, tail));
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&gzip[..]).read_to_end(&mut decoded).expect("valid gzip");
            assert_eq!(decoded, expected);
            // The trailer is checked by a strict decoder too.
            let mut multi = Vec::new();
            flate2::read::MultiGzDecoder::new(&gzip[..]).read_to_end(&mut multi).expect("valid gzip");
            assert_eq!(multi, expected);

            let br = concat(&packed.body(Encoding::Brotli, &head, tail));
            let mut decoded = Vec::new();
            brotli::Decompressor::new(&br[..], 4096).read_to_end(&mut decoded).expect("valid brotli");
            assert_eq!(decoded, expected);
            assert!(br.len() < expected.len() / 2 && gzip.len() < expected.len() / 2, "it compresses");
        }
    }

    #[test]
    fn a_corrupted_trailer_is_caught() {
        let head = head();
        let packed = Packed::new(&head).unwrap();
        let mut gzip = concat(&packed.body(Encoding::Gzip, &head, b"}"));
        let crc_at = gzip.len() - 8;
        gzip[crc_at] ^= 1;
        let mut decoded = Vec::new();
        assert!(flate2::read::GzDecoder::new(&gzip[..]).read_to_end(&mut decoded).is_err());
    }

    #[test]
    fn packed_parts_unpack_to_the_same_and_damage_is_refused() {
        let head = head();
        let packed = Packed::new(&head).unwrap();
        let (deflate, crc) = packed.parts();
        let (back, inflated) = Packed::unpack(deflate.to_vec(), crc, 1 << 20).expect("unpacks");
        assert_eq!((&back, &inflated), (&packed, &head));
        assert!(Packed::unpack(deflate.to_vec(), crc ^ 1, 1 << 20).is_none(), "another CRC");
        assert!(Packed::unpack(deflate.to_vec(), crc, head.len() - 1).is_none(), "over the limit");
        assert!(Packed::unpack(deflate[..deflate.len() / 2].to_vec(), crc, 1 << 20).is_none());
        assert!(Packed::unpack(b"not deflate at all".to_vec(), crc, 1 << 20).is_none());
        assert!(Packed::unpack(Vec::new(), crc, 1 << 20).is_none());
    }

    #[test]
    fn short_heads_stay_identity() {
        assert_eq!(Packed::new(&[b'x'; MIN_COMPRESSED_HEAD - 1]), None);
        assert!(Packed::new(&[b'x'; MIN_COMPRESSED_HEAD]).is_some());
    }
}
