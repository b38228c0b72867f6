//! Per-workload state that an autoscaler keeps from round to round, looked up in the
//! snapshot's order.
//!
//! A cluster lists its workloads in the same order round after round, so the workload at
//! position `i` of a snapshot is usually the entry at slot `i`: one name comparison finds it.
//! Only a workload that moved (or is new) is looked up by name. At 1,000 workloads this replaces
//! a search of an ordered map per workload and round (issue #20, `bench sim`).

use std::collections::HashMap;

/// Values by workload name, in the order the workloads were first seen.
#[derive(Debug, Clone)]
pub struct WorkloadTable<V> {
    entries: Vec<(String, V)>,
    index: HashMap<String, usize>,
}

impl<V> Default for WorkloadTable<V> {
    fn default() -> Self {
        WorkloadTable {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<V> WorkloadTable<V> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Workloads held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn slot(&self, hint: usize, name: &str) -> Option<usize> {
        if self.entries.get(hint).is_some_and(|(n, _)| n == name) {
            return Some(hint);
        }
        self.index.get(name).copied()
    }

    /// The value of `name`, expected at slot `hint`.
    pub fn get(&self, hint: usize, name: &str) -> Option<&V> {
        self.slot(hint, name).map(|k| &self.entries[k].1)
    }

    /// The value of `name` (expected at slot `hint`), made by `make` for a workload seen for the
    /// first time; `true` with it when it was made. The name is copied only then.
    pub fn get_or_insert_with(
        &mut self,
        hint: usize,
        name: &str,
        make: impl FnOnce() -> V,
    ) -> (&mut V, bool) {
        match self.slot(hint, name) {
            Some(k) => (&mut self.entries[k].1, false),
            None => {
                let k = self.entries.len();
                self.entries.push((name.to_owned(), make()));
                self.index.insert(name.to_owned(), k);
                (&mut self.entries[k].1, true)
            }
        }
    }

    /// Keeps the workloads whose name passes `keep`, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| keep(n));
        if self.entries.len() != before {
            self.index = self
                .entries
                .iter()
                .enumerate()
                .map(|(k, (n, _))| (n.clone(), k))
                .collect();
        }
    }

    /// `(name, value)` in the order first seen.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// `(name, value)`, the values mutable, in the order first seen.
    pub fn values_mut(&mut self) -> impl Iterator<Item = (&str, &mut V)> {
        self.entries.iter_mut().map(|(n, v)| (n.as_str(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_slot_and_by_name_and_forgets_what_is_dropped() {
        let mut t = WorkloadTable::new();
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            let (v, new) = t.get_or_insert_with(i, n, || i * 10);
            assert!(new);
            assert_eq!(*v, i * 10);
        }
        // Same order: found at its slot, nothing made.
        let (v, new) = t.get_or_insert_with(1, "b", || 99);
        assert!(!new);
        assert_eq!(*v, 10);
        // A wrong hint, or one past the end, still finds the name.
        assert_eq!(t.get(0, "c"), Some(&20));
        assert_eq!(t.get(7, "a"), Some(&0));
        assert_eq!(t.get(0, "zz"), None);
        *t.get_or_insert_with(5, "c", || 0).0 += 1;
        assert_eq!(t.get(2, "c"), Some(&21));
        t.retain(|n| n != "a");
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(0, "a"), None);
        // After the removal the slots shifted; names are still found.
        assert_eq!(t.get(0, "b"), Some(&10));
        assert_eq!(t.get(0, "c"), Some(&21));
        let names: Vec<_> = t.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, ["b", "c"]);
        let (v, new) = t.get_or_insert_with(0, "a", || 5);
        assert!(new && *v == 5);
        assert_eq!(t.get(2, "a"), Some(&5));
    }
}
