//! Dotted version vectors: causality tracking for eventual namespaces.
//!
//! A [`DvvSet`] is what one replica stores for one key: a [`VersionVector`] summarising every
//! write it knows of, plus the live [`Sibling`]s, each tagged with the [`Dot`] that wrote it.
//! Clients read the version vector as an opaque *context* and send it back with their next
//! write; the write then replaces exactly the siblings that context covers and keeps the rest as
//! concurrent siblings.
//!
//! The representation relies on one invariant: `vv[a] = n` means the holder has seen (or seen
//! superseded) every dot of `a` for this key with a counter up to `n`. That holds because only
//! the replica incarnation `a` mints dots for `a`, it mints them in increasing order from one
//! counter it never forgets (a replica that lost its history gets a fresh actor, DESIGN.md §4),
//! and every dot it mints for a key comes from a state holding all its earlier dots for that
//! key. An actor's counter is shared by every key it writes (see [`DvvSet::write`]'s `last`),
//! so one key's counters of an actor may have gaps; a gap is a dot of another key.
//!
//! **Bounded vectors.** Each restart of a node draws fresh actors, so a long-lived key is
//! written by ever more actors. A stored vector keeps the entries of the actors of its live
//! siblings and at most [`HISTORY_ENTRIES_MAX`] others: past that, the entries of the oldest
//! actors (actor ids begin with the minute they were drawn) that back no live sibling are
//! forgotten ([`DvvSet::write`] and [`DvvSet::merge`] prune). Forgetting an entry never loses a
//! write: a merge drops a sibling only when the other side covers its dot, and a forgotten
//! entry covers less, never more; and it cannot make an actor mint a dot twice, because the
//! actor's own counter, not the key's vector, is the floor of its next dot. Its price: a stale
//! copy of a value that many later writes superseded, met again after more than
//! [`HISTORY_ENTRIES_MAX`] newer actors wrote the key, comes back as a sibling (a false
//! conflict the client resolves, as in Riak's vclock pruning), never the other way round.
//! Below the bound [`DvvSet::merge`] is commutative, associative and idempotent, so replicas
//! can exchange and merge states in any order; above it, commutative and idempotent, and
//! replicas that exchanged everything hold the same state.

use serde::{Deserialize, Serialize};

use crate::{ActorId, ConflictPolicy, Timestamp};

/// Entries a stored version vector keeps for actors that back no live sibling (module doc).
/// With at most `limits.siblings_max` siblings, a vector has at most that many plus this many
/// entries, and a client's context (which carries only its siblings' actors, see
/// [`DvvSet::client_context`]) at most `siblings_max`.
pub const HISTORY_ENTRIES_MAX: usize = 64;

/// A write whose dot would need a counter past `u64::MAX`: only a corrupt or hostile state can
/// hold such a counter, and wrapping it around would mint a dot twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("actor {actor} has no counter left to mint a dot with")]
pub struct CounterExhausted {
    pub actor: ActorId,
}

/// One write event: the `counter`-th write minted by `actor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    pub actor: ActorId,
    pub counter: u64,
}

/// For each actor, the highest counter seen. Entries are kept sorted by actor with counters > 0,
/// so equal vectors have equal representations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector {
    entries: Vec<(ActorId, u64)>,
}

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest counter seen from `actor`, 0 if none.
    pub fn get(&self, actor: ActorId) -> u64 {
        match self.entries.binary_search_by_key(&actor, |(a, _)| *a) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// Raises `actor`'s entry to at least `counter`.
    pub fn witness(&mut self, actor: ActorId, counter: u64) {
        if counter == 0 {
            return;
        }
        match self.entries.binary_search_by_key(&actor, |(a, _)| *a) {
            Ok(i) => self.entries[i].1 = self.entries[i].1.max(counter),
            Err(i) => self.entries.insert(i, (actor, counter)),
        }
    }

    /// True if the write `dot` is in this vector's causal past.
    pub fn covers(&self, dot: Dot) -> bool {
        self.get(dot.actor) >= dot.counter
    }

    /// Pointwise maximum.
    pub fn join(&mut self, other: &VersionVector) {
        for &(actor, counter) in &other.entries {
            self.witness(actor, counter);
        }
    }

    /// True if every event `other` has seen, this has seen too.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.entries.iter().all(|&(actor, counter)| self.get(actor) >= counter)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of actors with an entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (ActorId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// Whether the entries are in their one canonical form: sorted by actor, each actor once,
    /// every counter above 0. Lookups binary-search the entries, so a vector in any other form
    /// (only a decoder can build one) would forget what it has seen.
    pub fn is_canonical(&self) -> bool {
        self.entries.iter().all(|(_, counter)| *counter > 0)
            && self.entries.windows(2).all(|pair| pair[0].0 < pair[1].0)
    }

    /// Builds a vector from arbitrary entries, as decoded from a client token.
    pub fn from_entries(entries: impl IntoIterator<Item = (ActorId, u64)>) -> Self {
        let mut vv = VersionVector::new();
        for (actor, counter) in entries {
            vv.witness(actor, counter);
        }
        vv
    }
}

/// What a sibling holds: a value, or the tombstone a delete leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    Value {
        /// Serialized as a byte string (one copy; the same postcard bytes as a `Vec<u8>`).
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        content_type: String,
    },
    Tombstone,
}

impl Content {
    pub fn is_tombstone(&self) -> bool {
        matches!(self, Content::Tombstone)
    }
}

/// One concurrent version of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    pub dot: Dot,
    /// Hybrid timestamp of the write, used only by last-write-wins namespaces.
    pub timestamp: Timestamp,
    pub content: Content,
}

/// A replica's state for one key: the causal summary and the live siblings.
///
/// Siblings are kept sorted by dot and every sibling's dot is covered by `vv`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DvvSet {
    vv: VersionVector,
    siblings: Vec<Sibling>,
}

impl DvvSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// A state with no siblings that has seen every write in `vv`: what a replica knows of a
    /// key whose tombstone it purged, so that its next write of the key mints a dot past every
    /// dot the tombstone covered.
    pub fn seen(vv: VersionVector) -> Self {
        Self { vv, siblings: Vec::new() }
    }

    /// The causal context a client should send back with its next write of this key.
    pub fn context(&self) -> &VersionVector {
        &self.vv
    }

    /// All siblings, tombstones included, sorted by dot.
    pub fn siblings(&self) -> &[Sibling] {
        &self.siblings
    }

    /// The siblings that hold values (tombstones left out).
    pub fn values(&self) -> impl Iterator<Item = &Sibling> + '_ {
        self.siblings.iter().filter(|s| !s.content.is_tombstone())
    }

    /// True if no sibling holds a value: the key reads as absent.
    pub fn is_deleted(&self) -> bool {
        self.values().next().is_none()
    }

    /// Applies a client write coordinated by the replica incarnation `last.actor`, returning
    /// the new dot.
    ///
    /// `last` is the last dot the actor minted for any key (counter 0 if none): the new dot's
    /// counter is past it, past the stored entry and past the context's, so the actor never
    /// mints a dot twice even for a key whose entry for it was pruned or purged.
    ///
    /// Under [`ConflictPolicy::Siblings`], siblings covered by `context` are replaced and the
    /// others stay as concurrent siblings. Under [`ConflictPolicy::Lww`] the new value replaces
    /// everything; its timestamp is raised above the stored one if needed, so a replica never
    /// acknowledges a write that its own state would then hide.
    pub fn write(
        &mut self,
        context: &VersionVector,
        last: Dot,
        timestamp: Timestamp,
        content: Content,
        policy: ConflictPolicy,
    ) -> Result<Dot, CounterExhausted> {
        let Dot { actor, counter: floor } = last;
        let counter = self
            .vv
            .get(actor)
            .max(context.get(actor))
            .max(floor)
            .checked_add(1)
            .ok_or(CounterExhausted { actor })?;
        let timestamp = match policy {
            ConflictPolicy::Siblings => {
                self.siblings.retain(|s| !context.covers(s.dot));
                timestamp
            }
            ConflictPolicy::Lww => {
                let stored_max = self.siblings.iter().map(|s| s.timestamp).max();
                self.siblings.clear();
                stored_max.map_or(timestamp, |t| timestamp.max(Timestamp(t.0.saturating_add(1))))
            }
        };
        let dot = Dot { actor, counter };
        self.vv.join(context);
        self.vv.witness(actor, counter);
        self.insert_sorted(Sibling { dot, timestamp, content });
        self.prune();
        Ok(dot)
    }

    /// The context a client is given with what it read: the entries of the actors of the
    /// siblings it was shown, which is all a write needs to supersede exactly those siblings.
    /// Entries of actors without a live sibling cover nothing the client saw; leaving them out
    /// keeps a token within `siblings_max` entries however many actors wrote the key.
    pub fn client_context(&self) -> VersionVector {
        let mut entries: Vec<(ActorId, u64)> = Vec::with_capacity(self.siblings.len());
        for sibling in &self.siblings {
            let actor = sibling.dot.actor;
            if entries.last().is_none_or(|(last, _)| *last != actor) {
                entries.push((actor, self.vv.get(actor)));
            }
        }
        // Siblings are sorted by dot, so by actor: the entries are sorted and distinct.
        VersionVector { entries }
    }

    /// Forgets the oldest entries that back no live sibling beyond [`HISTORY_ENTRIES_MAX`].
    /// Deterministic in the state, so replicas holding the same writes prune alike.
    ///
    /// Linear in entries and siblings: both are sorted by actor (siblings by dot, whose actor
    /// comes first), so one walk of each says which entries back a live sibling.
    fn prune(&mut self) {
        let mut live = LiveActors::new(&self.siblings);
        let history = self.vv.entries.iter().filter(|(actor, _)| !live.has(*actor)).count();
        if history <= HISTORY_ENTRIES_MAX {
            return;
        }
        // Entries are sorted by actor id, and an actor id begins with the minute it was drawn:
        // the first entries without a live sibling are the oldest.
        let mut excess = history - HISTORY_ENTRIES_MAX;
        let mut live = LiveActors::new(&self.siblings);
        self.vv.entries.retain(|(actor, _)| {
            if excess == 0 || live.has(*actor) {
                return true;
            }
            excess -= 1;
            false
        });
    }

    /// Merges another replica's state for the same key into this one.
    ///
    /// Under [`ConflictPolicy::Siblings`] a sibling survives if the other side still has it or
    /// has never seen it; a sibling the other side has seen and dropped was superseded there.
    /// Under [`ConflictPolicy::Lww`] the sibling with the latest (timestamp, dot) wins, whatever
    /// the causality: a causal filter before the maximum would make the merge non-associative.
    pub fn merge(&mut self, other: &DvvSet, policy: ConflictPolicy) {
        self.merge_from(other.clone(), policy);
    }

    /// [`DvvSet::merge`] taking the other state by value, so that the siblings it keeps are
    /// moved in rather than copied (a value is copied once less on every merge of the data
    /// path).
    pub fn merge_from(&mut self, mut other: DvvSet, policy: ConflictPolicy) {
        match policy {
            ConflictPolicy::Siblings => self.merge_causal(&mut other),
            ConflictPolicy::Lww => self.merge_latest(&mut other),
        }
        self.vv.join(&other.vv);
        self.prune();
    }

    /// Takes the siblings it keeps out of `other`.
    fn merge_causal(&mut self, other: &mut DvvSet) {
        let mine = std::mem::take(&mut self.siblings);
        let mut siblings: Vec<Sibling> =
            mine.into_iter().filter(|s| other.contains(s.dot) || !other.vv.covers(s.dot)).collect();
        for sibling in std::mem::take(&mut other.siblings) {
            let new = !self.vv.covers(sibling.dot) && siblings.iter().all(|s| s.dot != sibling.dot);
            if new {
                siblings.push(sibling);
            }
        }
        siblings.sort_by_key(|s| s.dot);
        self.siblings = siblings;
    }

    /// Takes the winner out of `other` if it is there.
    fn merge_latest(&mut self, other: &mut DvvSet) {
        let mine = std::mem::take(&mut self.siblings);
        let theirs = std::mem::take(&mut other.siblings);
        let winner = mine.into_iter().chain(theirs).max_by_key(|s| (s.timestamp, s.dot));
        self.siblings = winner.into_iter().collect();
    }

    /// True if a sibling with this dot is live here.
    pub fn contains(&self, dot: Dot) -> bool {
        self.siblings.binary_search_by_key(&dot, |s| s.dot).is_ok()
    }

    fn insert_sorted(&mut self, sibling: Sibling) {
        let at = self.siblings.partition_point(|s| s.dot < sibling.dot);
        assert!(self.siblings.get(at).is_none_or(|s| s.dot != sibling.dot), "dot minted twice");
        self.siblings.insert(at, sibling);
    }

    /// Checks the structural invariants; used after decoding from disk or the wire.
    pub fn is_well_formed(&self) -> bool {
        self.vv.is_canonical()
            && self.siblings.windows(2).all(|w| w[0].dot < w[1].dot)
            && self.siblings.iter().all(|s| self.vv.covers(s.dot))
    }
}

/// Answers "does a sibling of this actor exist?" for actors asked in ascending order, walking
/// the siblings (sorted by dot, so by actor) once over all the questions.
struct LiveActors<'s> {
    siblings: std::iter::Peekable<std::slice::Iter<'s, Sibling>>,
}

impl<'s> LiveActors<'s> {
    fn new(siblings: &'s [Sibling]) -> Self {
        Self { siblings: siblings.iter().peekable() }
    }

    /// Whether a sibling of `actor` exists; `actor` is at least the one asked last.
    fn has(&mut self, actor: ActorId) -> bool {
        while self.siblings.next_if(|s| s.dot.actor < actor).is_some() {}
        self.siblings.peek().is_some_and(|s| s.dot.actor == actor)
    }
}

#[cfg(test)]
mod tests;
