//! The Internet checksum (RFC 1071), used by the IPv4 header and by ICMP.
//!
//! Add the data as big-endian 16-bit words in ones' complement arithmetic (a carry out
//! of bit 15 is added back in at bit 0), then take the ones' complement of the sum.
//! An odd length is padded with one zero byte at the end (RFC 1071 section 1, step 2:
//! "if the total length is odd, the received data is padded with one octet of zeros").
//!
//! Why it works for checking: a sender stores the complement of the sum in the
//! checksum field, so the sum over the whole message, checksum included, is 0xffff
//! (ones' complement "minus zero"). A receiver sums everything and compares with
//! 0xffff; it never needs to zero the field first ([`verify`]).
//!
//! The sum is order-independent and byte-order-independent in the ways RFC 1071
//! section 2 lists, which is why it can be computed in a wide accumulator and folded
//! at the end: we add 16-bit words into a `u32` and fold the carries once.

/// The ones' complement sum of `data` as 16-bit big-endian words, not yet folded:
/// pass it to [`fold`], or add more with [`sum_more`] (a pseudo-header, a second buffer).
pub fn sum(data: &[u8]) -> u32 {
    sum_more(0, data)
}

/// Adds `data` to a running sum. Each chunk fed in must start at an even offset of the
/// message (all but the last of even length), or the words would be split differently.
pub fn sum_more(mut acc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc = fold_once(acc + u32::from(u16::from_be_bytes([w[0], w[1]])));
    }
    // The odd byte is the high half of a word whose low half is the zero pad.
    if let [last] = words.remainder() {
        acc = fold_once(acc + (u32::from(*last) << 8));
    }
    acc
}

/// Keeps the accumulator below 2^17 so it can never overflow, however long the data.
fn fold_once(acc: u32) -> u32 {
    (acc & 0xffff) + (acc >> 16)
}

/// Folds the carries of a running sum back into 16 bits (end-around carry).
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum to store in a header: the complement of the folded sum. Compute it with
/// the checksum field set to zero.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// The checksum after bytes that were zero when `old` was computed are set to `added`,
/// without summing the rest again (RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), with m = 0):
/// how ping stamps the send time into a request already checksummed, at the last
/// moment before sending. `added` must start at an even offset of the message.
pub fn update_zeroed(old: u16, added: &[u8]) -> u16 {
    !fold(sum_more(u32::from(!old), added))
}

/// True when `data`, checksum field included, sums to 0xffff: the check a receiver
/// makes (RFC 1071 section 1, step 3).
pub fn verify(data: &[u8]) -> bool {
    fold(sum(data)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn rfc_1071_numerical_example() {
        // RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2 (after
        // the end-around carry of 0x2ddf0), so the checksum is its complement, 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
    }

    #[test]
    fn a_real_ipv4_header() {
        // A captured header (192.168.0.1 -> 192.168.0.199, UDP) whose checksum field
        // holds 0xb861: zeroing the field and recomputing gives it back, and the header
        // as received verifies.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verify(&h));
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0xb861);
        assert!(!verify(&h));
    }

    #[test]
    fn odd_lengths_pad_with_a_zero_byte_at_the_end() {
        // One byte 0x01 is the word 0x0100, not 0x0001.
        assert_eq!(checksum(&[0x01]), !0x0100);
        // 0xabcd + 0xef00 = 0x19acd, end-around carry: 0x9ace, complement 0x6531.
        assert_eq!(checksum(&[0xab, 0xcd, 0xef]), 0x6531);
        // Padding explicitly gives the same result, for every odd length up to 99.
        let mut rng = Rng::new(1071);
        for n in (1..100).step_by(2) {
            let data = rng.bytes(n);
            let mut padded = data.clone();
            padded.push(0);
            assert_eq!(checksum(&data), checksum(&padded), "length {n}");
        }
    }

    #[test]
    fn updating_for_zeroed_bytes_equals_recomputing() {
        // Like a ping request: checksum over data whose first 8 bytes are zero, then the
        // stamp written there and the checksum updated, not recomputed.
        let mut rng = Rng::new(1624);
        for n in [8usize, 9, 56, 57, 1000] {
            let mut m = rng.bytes(8 + n);
            m[2..4].fill(0);
            m[8..16].fill(0);
            let before = checksum(&m);
            let stamp = rng.bytes(8);
            m[8..16].copy_from_slice(&stamp);
            assert_eq!(update_zeroed(before, &stamp), checksum(&m), "length {n}");
        }
    }

    #[test]
    fn empty_and_all_ones() {
        assert_eq!(checksum(&[]), 0xffff);
        // 0xffff + 0xffff = 0x1fffe -> 0xffff: "minus zero" stays minus zero.
        assert_eq!(fold(sum(&[0xff; 4])), 0xffff);
        assert_eq!(checksum(&[0xff; 4]), 0x0000);
    }

    #[test]
    fn storing_the_checksum_makes_the_message_verify() {
        let mut rng = Rng::new(7);
        for n in [4usize, 5, 8, 64, 65, 1500, 65_535] {
            let mut m = rng.bytes(n);
            m[2] = 0;
            m[3] = 0;
            let c = checksum(&m);
            m[2..4].copy_from_slice(&c.to_be_bytes());
            assert!(verify(&m), "length {n}");
            // Any single flipped bit is caught.
            m[n / 2] ^= 0x10;
            assert!(!verify(&m), "length {n}");
        }
    }

    #[test]
    fn sums_can_be_fed_in_pieces() {
        let mut rng = Rng::new(9);
        let data = rng.bytes(101);
        let whole = sum(&data);
        let split = sum_more(sum(&data[..40]), &data[40..]);
        assert_eq!(fold(whole), fold(split));
    }
}
