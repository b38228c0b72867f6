//! Panics inside tract, contained: an error for the caller, and no panic message printed.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`contained`], so the panic hook stays quiet.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `f`; a panic in it becomes `Err` with its message. The process's panic hook keeps
/// printing every other panic (it is wrapped once, not replaced).
pub(crate) fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !INSIDE.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = INSIDE.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|c| c.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_other_panics_still_unwind() {
        assert_eq!(contained(|| 7), Ok(7));
        let v: Vec<u8> = Vec::new();
        let e = contained(|| v[3]).unwrap_err();
        assert!(e.contains("index out of bounds"), "{e}");
        assert_eq!(
            contained(|| -> u8 { panic!("boom {}", 1) }),
            Err("boom 1".into())
        );
        // Outside, a panic is a panic again.
        assert!(std::panic::catch_unwind(|| v[1]).is_err());
        assert!(!INSIDE.with(Cell::get));
    }
}
