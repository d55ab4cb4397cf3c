//! Short-lived caches of what PAPI and IMGAPI answer the gate's reads
//! (ListPackages, GetPackage, ListImages, GetImage), so that a burst of
//! listings costs one backend call per TTL instead of one each.
//!
//! The rules (README "Caching"):
//!
//! - only package and image data is kept, keyed by the exact query (which
//!   names the account), for at most the TTL (`--cache-ttl`, default
//!   [`DEFAULT_TTL`]; 0 turns caching off);
//! - every request that is not a read (any method but GET, HEAD and
//!   OPTIONS) empties the caches when its answer is ready, whatever the
//!   answer, so a change made through the gate is seen by the next request;
//! - an answer fetched while such a write was under way is not kept
//!   (a generation count), so it cannot outlive the write;
//! - errors are never kept;
//! - keys, accounts, operator membership (mahi) and anything else an
//!   authorization decision reads are never cached: every request reads
//!   them fresh, and the builder visibility rules are applied to the cached
//!   objects anew for each request's caller;
//! - decisions that create or change something (CreateMachine, the machine
//!   actions, CreateImageFromMachine) read PAPI and IMGAPI fresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use triton_api::{Image, Package};

/// The TTL when none is configured.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);

/// Most entries one cache holds; past it, expired entries go, then all.
const MAX_ENTRIES: usize = 4096;

/// A generation taken before a fetch: the answer is kept only when no
/// invalidation happened in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// One map of answers with a TTL.
#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> TtlCache<V> {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer kept for `key`, if younger than the TTL at `now`.
    pub fn get_at(&self, key: &str, now: Instant) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut m = self.lock();
        match m.get(key) {
            Some((at, v)) if now.saturating_duration_since(*at) < self.ttl => Some(v.clone()),
            Some(_) => {
                m.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keep `v` for `key` as of `now`.
    pub fn put_at(&self, key: &str, v: V, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut m = self.lock();
        if m.len() >= MAX_ENTRIES && !m.contains_key(key) {
            let ttl = self.ttl;
            m.retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
        }
        m.insert(key.to_string(), (now, v));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A list answer, and what the gate made of it for each kind of caller:
/// those who may see builder objects and those who may not (the only
/// thing about the caller the builder visibility rules read). Each view
/// is made on first use; the caller's right to see builder is decided
/// fresh for every request, only the rendering is kept.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: Vec<T>,
    views: [OnceLock<Arc<View>>; 2],
}

/// A listing as shown to one kind of caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The JSON array the client gets.
    pub body: Bytes,
    /// How many objects it holds.
    pub count: usize,
    /// UUIDs of the builder objects shown.
    pub shown_builder: Vec<String>,
    /// UUIDs of the builder objects left out.
    pub hidden: Vec<String>,
}

impl<T> Listing<T> {
    pub fn new(items: Vec<T>) -> Listing<T> {
        Listing {
            items,
            views: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The view for callers who may (`true`) or may not see builder
    /// objects, made by `make` the first time.
    pub fn view(&self, builder_allowed: bool, make: impl FnOnce(&[T]) -> View) -> Arc<View> {
        self.views[usize::from(builder_allowed)]
            .get_or_init(|| Arc::new(make(&self.items)))
            .clone()
    }
}

/// The gate's read caches: PAPI and IMGAPI answers, one generation.
#[derive(Debug)]
pub struct ReadCache {
    ttl: Duration,
    generation: AtomicU64,
    /// `GET /packages?<query>`.
    pub package_lists: TtlCache<Arc<Listing<Package>>>,
    /// `GET /packages/<uuid>?owner_uuids=<account>`.
    pub packages: TtlCache<Arc<Package>>,
    /// `GET /images?<query>`.
    pub image_lists: TtlCache<Arc<Listing<Image>>>,
    /// `GET /images/<uuid>?account=<account>`.
    pub images: TtlCache<Arc<Image>>,
}

impl ReadCache {
    pub fn new(ttl: Duration) -> ReadCache {
        ReadCache {
            ttl,
            generation: AtomicU64::new(0),
            package_lists: TtlCache::new(ttl),
            packages: TtlCache::new(ttl),
            image_lists: TtlCache::new(ttl),
            images: TtlCache::new(ttl),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// Take before fetching what is to be kept.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::SeqCst))
    }

    /// Whether no invalidation happened since `t`.
    pub fn current(&self, t: Ticket) -> bool {
        self.generation.load(Ordering::SeqCst) == t.0
    }

    /// Keep `v` in `cache` when no invalidation happened since `t`.
    pub fn keep<V: Clone>(&self, cache: &TtlCache<V>, t: Ticket, key: &str, v: V) {
        if !self.current(t) {
            return;
        }
        cache.put_at(key, v, Instant::now());
        // an invalidation that raced the insert empties the caches after
        // its generation bump; drop what may have landed after it
        if !self.current(t) {
            cache.clear();
        }
    }

    /// Forget everything (a write went through the gate).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.package_lists.clear();
        self.packages.clear();
        self.image_lists.clear();
        self.images.clear();
    }
}

/// A cache key: what is asked and its query pairs, in order, encoded.
pub fn key(what: &str, pairs: &[(String, String)]) -> String {
    let mut q = form_urlencoded::Serializer::for_suffix(format!("{what}?"), what.len() + 1);
    q.extend_pairs(pairs);
    q.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let c: TtlCache<u32> = TtlCache::new(Duration::from_secs(2));
        let t0 = Instant::now();
        c.put_at("a", 1, t0);
        assert_eq!(c.get_at("a", t0), Some(1));
        assert_eq!(c.get_at("a", t0 + Duration::from_millis(1999)), Some(1));
        assert_eq!(c.get_at("a", t0 + Duration::from_secs(2)), None);
        // the expired entry is gone, not just hidden
        assert!(c.is_empty());
        assert_eq!(c.get_at("b", t0), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let c: TtlCache<u32> = TtlCache::new(Duration::ZERO);
        let t0 = Instant::now();
        c.put_at("a", 1, t0);
        assert_eq!(c.get_at("a", t0), None);
        assert!(c.is_empty());
        assert!(!ReadCache::new(Duration::ZERO).enabled());
    }

    #[test]
    fn invalidation_empties_and_refuses_answers_fetched_before_it() {
        let r = ReadCache::new(Duration::from_secs(60));
        let t = r.ticket();
        r.keep(&r.package_lists, t, "k", Arc::new(Listing::new(Vec::new())));
        assert!(r.package_lists.get_at("k", Instant::now()).is_some());
        // a fetch starts, a write goes through, the fetch ends
        let during = r.ticket();
        r.invalidate();
        assert!(r.package_lists.is_empty());
        r.keep(
            &r.package_lists,
            during,
            "k",
            Arc::new(Listing::new(Vec::new())),
        );
        assert!(
            r.package_lists.is_empty(),
            "kept an answer older than a write"
        );
        // a fetch after the write is kept
        r.keep(
            &r.package_lists,
            r.ticket(),
            "k",
            Arc::new(Listing::new(Vec::new())),
        );
        assert_eq!(r.package_lists.len(), 1);
    }

    #[test]
    fn a_view_is_made_once_per_kind_of_caller() {
        let l = Listing::new(vec![1, 2, 3]);
        let made = std::cell::Cell::new(0);
        let made = &made;
        let make = |allowed: bool| {
            move |items: &[i32]| {
                made.set(made.get() + 1);
                let shown: Vec<i32> = items
                    .iter()
                    .copied()
                    .filter(|i| allowed || *i != 2)
                    .collect();
                View {
                    body: serde_json::to_vec(&shown).unwrap().into(),
                    count: shown.len(),
                    shown_builder: Vec::new(),
                    hidden: Vec::new(),
                }
            }
        };
        assert_eq!(&l.view(false, make(false)).body[..], b"[1,3]");
        assert_eq!(&l.view(true, make(true)).body[..], b"[1,2,3]");
        assert_eq!(&l.view(false, make(false)).body[..], b"[1,3]");
        assert_eq!(made.get(), 2);
    }

    #[test]
    fn the_size_is_bounded() {
        let c: TtlCache<usize> = TtlCache::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES + 10 {
            c.put_at(&i.to_string(), i, t0);
        }
        assert!(c.len() <= MAX_ENTRIES);
    }

    #[test]
    fn keys_keep_the_order_and_the_values() {
        let p = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            key("papi", &[p("active", "true"), p("owner_uuids", "x")]),
            "papi?active=true&owner_uuids=x"
        );
        assert_ne!(key("papi", &[p("a", "b=c")]), key("papi", &[p("a=b", "c")]));
        assert_ne!(
            key("papi", &[p("a", "1"), p("b", "2")]),
            key("papi", &[p("b", "2"), p("a", "1")])
        );
    }
}
