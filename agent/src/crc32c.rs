//! CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`, initial value and final XOR
//! `0xFFFFFFFF`): the checksum of the agent's own files (event store records, state
//! files). The same function as iSCSI, ext4 metadata and `crc32c` in Python or Go, so a
//! file can be checked with other tools. Table-driven, one byte at a time: the files it
//! guards are written at event rate, not packet rate, so speed is not the point; no
//! dependency is.

const POLY: u32 = 0x82F6_3B78;

// Evaluated at compile time: an index out of bounds would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// A running CRC-32C, for data that comes in parts.
#[derive(Clone, Copy, Debug)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    pub const fn new() -> Crc32c {
        Crc32c(0xFFFF_FFFF)
    }

    pub fn update(mut self, data: &[u8]) -> Crc32c {
        for &b in data {
            let idx = ((self.0 ^ u32::from(b)) & 0xFF) as usize;
            // `idx` is masked to 0..=255 and the table has 256 entries.
            let entry = TABLE.get(idx).copied().unwrap_or(0);
            self.0 = (self.0 >> 8) ^ entry;
        }
        self
    }

    pub const fn finish(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    Crc32c::new().update(data).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values() {
        // The standard check value (RFC 3720 / the CRC catalogue) and RFC 3720 B.4 vectors.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn parts_equal_whole() {
        let data = b"the quick brown fox jumps over the lazy dog";
        for cut in 0..data.len() {
            let (a, b) = data.split_at(cut);
            assert_eq!(Crc32c::new().update(a).update(b).finish(), crc32c(data));
        }
    }
}
