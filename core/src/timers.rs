//! A deterministic timer set.
//!
//! Deadlines are kept in a `BTreeSet` ordered by (deadline, timer), so two timers due
//! at the same instant always fire in the same order. Timers are never cancelled:
//! each handler checks that the state it was armed for still holds, which keeps the
//! bookkeeping out of every state transition.

use std::collections::BTreeSet;

use crate::time::Millis;

#[derive(Clone, Debug)]
pub struct Timers<T: Ord> {
    set: BTreeSet<(Millis, T)>,
}

impl<T: Ord + Copy> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            set: BTreeSet::new(),
        }
    }
}

impl<T: Ord + Copy> Timers<T> {
    pub fn set(&mut self, at: Millis, timer: T) {
        self.set.insert((at, timer));
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Millis> {
        self.set.first().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: Millis) -> Option<T> {
        match self.set.first() {
            Some(&(at, _)) if at <= now => self.set.pop_first().map(|(_, t)| t),
            _ => None,
        }
    }

    pub fn clear(&mut self) {
        self.set.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let mut t = Timers::default();
        t.set(Millis(20), 'b');
        t.set(Millis(10), 'a');
        t.set(Millis(20), 'a');
        assert_eq!(t.next(), Some(Millis(10)));
        assert_eq!(t.pop_due(Millis(5)), None);
        assert_eq!(t.pop_due(Millis(20)), Some('a'));
        assert_eq!(t.pop_due(Millis(20)), Some('a'));
        assert_eq!(t.pop_due(Millis(20)), Some('b'));
        assert_eq!(t.next(), None);
    }
}
