//! The mutation strategy the fuzz tests share (sim and monitor include this file by path).

use proptest::prelude::*;

/// `base` with up to 8 bytes replaced and possibly truncated, as text.
pub fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(move |(edits, cut, truncate)| {
            let mut b = base.as_bytes().to_vec();
            for (i, byte) in edits {
                let at = i.index(b.len());
                b[at] = byte;
            }
            if truncate {
                b.truncate(cut.index(b.len() + 1));
            }
            String::from_utf8_lossy(&b).into_owned()
        })
}
