//! [`TimerQueue`]: the driver's pending SWIM timers, ordered by deadline.
//!
//! One queue polled by the driver's loop rather than a spawned sleep per timer: nothing
//! outlives the driver, timers fire in deadline order (foca needs the indirect probe of a
//! round handled before the next round starts), and all of them can be postponed at once
//! after the driver was stalled.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

use crate::SwimTimer;

#[derive(Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<Pending>>,
    /// Breaks ties between equal deadlines in arming order.
    next_seq: u64,
}

struct Pending {
    at: Instant,
    seq: u64,
    timer: SwimTimer,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl TimerQueue {
    pub(crate) fn push(&mut self, at: Instant, timer: SwimTimer) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Pending { at, seq, timer }));
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(pending)| pending.at)
    }

    /// The earliest timer due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<SwimTimer> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(pending)| pending.timer)
    }

    /// Moves every deadline `by` later, keeping their order.
    pub(crate) fn postpone_all(&mut self, by: Duration) {
        let pending = std::mem::take(&mut self.heap);
        self.heap = pending
            .into_iter()
            .map(|Reverse(mut pending)| {
                pending.at += by;
                Reverse(pending)
            })
            .collect();
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swim::TimerKind;

    fn timer() -> SwimTimer {
        SwimTimer(TimerKind::AnnounceToDown)
    }

    #[test]
    fn timers_come_out_in_deadline_then_arming_order() {
        let now = Instant::now();
        let mut queue = TimerQueue::default();
        queue.push(now + Duration::from_millis(20), timer());
        queue.push(now + Duration::from_millis(10), timer());
        queue.push(now + Duration::from_millis(10), timer());
        assert_eq!(queue.next_deadline(), Some(now + Duration::from_millis(10)));
        assert!(queue.pop_due(now).is_none());
        let mut seqs = Vec::new();
        while let Some(Reverse(pending)) = queue.heap.pop() {
            seqs.push(pending.seq);
        }
        assert_eq!(seqs, [1, 2, 0]);
    }

    #[test]
    fn postponing_moves_every_deadline() {
        let now = Instant::now();
        let mut queue = TimerQueue::default();
        queue.push(now, timer());
        queue.push(now + Duration::from_millis(5), timer());
        queue.postpone_all(Duration::from_millis(100));
        assert_eq!(queue.next_deadline(), Some(now + Duration::from_millis(100)));
        assert!(queue.pop_due(now + Duration::from_millis(99)).is_none());
        assert!(queue.pop_due(now + Duration::from_millis(100)).is_some());
        assert_eq!(queue.len(), 1);
    }
}
