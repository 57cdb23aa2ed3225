//! Fault injection inside the transport, for tests of the whole system (DESIGN.md §9, `POST
//! /v1/admin/faults`). Rules act on this node's side only; to cut a link both ways, set rules on
//! both ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use concord_types::NodeId;
use serde::Deserialize;

/// The rules in force. JSON shape (every field optional):
/// `{"drop_to": [ids], "drop_from": [ids], "delay_ms": {"id": ms}, "clock_offset_ms": n}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRules {
    /// Frames to these nodes are not sent: a call to one times out at its deadline, as over a
    /// cut cable; a response to one is not sent; a one-way message to one vanishes.
    pub drop_to: BTreeSet<NodeId>,
    /// Frames from these nodes are discarded on arrival: a request or one-way message is not
    /// handled or answered, a response is ignored (the call times out).
    pub drop_from: BTreeSet<NodeId>,
    /// Every frame to this node waits this many milliseconds before it is written, like a slow
    /// link: frames keep their order and the delays of back-to-back frames overlap.
    pub delay_ms: BTreeMap<NodeId, u64>,
    /// Added to this node's clock readings by the layers that read the clock through
    /// [`Faults::clock_offset_ms`] (membership's time probes); the transport does not use it.
    pub clock_offset_ms: i64,
}

impl FaultRules {
    fn is_empty(&self) -> bool {
        *self == FaultRules::default()
    }
}

/// The fault rules shared by this node's server and transport.
#[derive(Debug, Default)]
pub struct Faults {
    /// False whenever the rules are empty, so the hot path skips the lock in production.
    active: AtomicBool,
    rules: RwLock<Arc<FaultRules>>,
}

impl Faults {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the rules.
    pub fn set(&self, rules: FaultRules) {
        let active = !rules.is_empty();
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
        self.active.store(active, Ordering::Release);
    }

    /// Removes every rule: the network heals.
    pub fn clear(&self) {
        self.set(FaultRules::default());
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<FaultRules> {
        self.rules.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn clock_offset_ms(&self) -> i64 {
        self.when_active(0, |rules| rules.clock_offset_ms)
    }

    /// Whether frames to `node` are dropped.
    pub fn drops_to(&self, node: &NodeId) -> bool {
        self.when_active(false, |rules| rules.drop_to.contains(node))
    }

    /// Whether frames from `node` are discarded.
    pub fn drops_from(&self, node: &NodeId) -> bool {
        self.when_active(false, |rules| rules.drop_from.contains(node))
    }

    /// How long frames to `node` wait before they are written.
    pub fn delay_to(&self, node: &NodeId) -> Option<Duration> {
        self.when_active(None, |rules| {
            rules.delay_ms.get(node).filter(|ms| **ms > 0).map(|ms| Duration::from_millis(*ms))
        })
    }

    fn when_active<T>(&self, inactive: T, read: impl FnOnce(&FaultRules) -> T) -> T {
        if !self.active.load(Ordering::Acquire) {
            return inactive;
        }
        read(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeId {
        NodeId::new(name).unwrap()
    }

    #[test]
    fn the_admin_json_shape_parses_with_every_field_optional() {
        let rules: FaultRules = serde_json::from_str(
            r#"{"drop_to": ["n2"], "drop_from": ["n3"], "delay_ms": {"n4": 150}, "clock_offset_ms": -20}"#,
        )
        .unwrap();
        assert!(rules.drop_to.contains(&node("n2")));
        assert!(rules.drop_from.contains(&node("n3")));
        assert_eq!(rules.delay_ms.get(&node("n4")), Some(&150));
        assert_eq!(rules.clock_offset_ms, -20);
        assert_eq!(serde_json::from_str::<FaultRules>("{}").unwrap(), FaultRules::default());
        assert!(serde_json::from_str::<FaultRules>(r#"{"drop": []}"#).is_err());
    }

    #[test]
    fn rules_apply_until_cleared() {
        let faults = Faults::new();
        assert!(!faults.drops_to(&node("n2")));
        faults.set(FaultRules {
            drop_to: [node("n2")].into(),
            drop_from: [node("n3")].into(),
            delay_ms: [(node("n4"), 5), (node("n5"), 0)].into(),
            clock_offset_ms: 9,
        });
        assert!(faults.drops_to(&node("n2")));
        assert!(!faults.drops_to(&node("n3")));
        assert!(faults.drops_from(&node("n3")));
        assert_eq!(faults.delay_to(&node("n4")), Some(Duration::from_millis(5)));
        assert_eq!(faults.delay_to(&node("n5")), None);
        assert_eq!(faults.clock_offset_ms(), 9);
        faults.clear();
        assert!(!faults.drops_to(&node("n2")));
        assert_eq!(faults.clock_offset_ms(), 0);
        assert_eq!(*faults.rules(), FaultRules::default());
    }
}
