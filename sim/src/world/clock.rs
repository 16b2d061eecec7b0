//! Each node's drifting local clock and its inverse.

use super::*;

/// A node's local clock: `local = offset + global · (1 + ppm / 10⁶)`.
#[derive(Copy, Clone, Debug)]
pub(super) struct Clock {
    pub(super) offset: u64,
    pub(super) ppm: i64,
}

impl Clock {
    pub(super) fn local(&self, global: Millis) -> Millis {
        let g = global.0 as i128;
        Millis((self.offset as i128 + g + g * self.ppm as i128 / 1_000_000) as u64)
    }

    /// The earliest global time at which the local clock reads at least `local`.
    pub(super) fn global(&self, local: Millis) -> Millis {
        let l = local.0 as i128 - self.offset as i128;
        let g =
            (l * 1_000_000 + (1_000_000 + self.ppm as i128) - 1) / (1_000_000 + self.ppm as i128);
        // The guess is within a millisecond or two; settle it exactly.
        let mut g = g.max(0) as u64;
        while g > 0 && self.local(Millis(g - 1)) >= local {
            g -= 1;
        }
        while self.local(Millis(g)) < local {
            g += 1;
        }
        Millis(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_inverse_is_tight() {
        for ppm in [-9_999, -1, 0, 1, 5_000, 9_999] {
            let c = Clock {
                offset: 12_345,
                ppm,
            };
            for g in [0u64, 1, 999, 1_000_000, 123_456_789] {
                let l = c.local(Millis(g));
                let back = c.global(l);
                assert!(back <= Millis(g), "ppm {ppm} g {g}");
                assert!(c.local(back) >= l);
            }
        }
    }
}
