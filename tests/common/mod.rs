//! Shared helpers for the integration tests: a seeded generator of pattern
//! inputs, the model of what a stored pattern looks like, and shortcuts for
//! opening caches and databases in temp directories.
//!
//! Each test binary uses a different subset of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pattern_cache::cache_file::{self, CachePaths};
use pattern_cache::db::{queries, Database};
use pattern_cache::{
    AgentConfig, AgentConfigInput, Config, ConfigInput, Pattern, PatternCache, PatternFilter, PatternInput, Verdict,
};

/// Relative to the temp dir every test gets.
pub const DB_REL: &str = "db/patterns.db";
pub const CACHE_REL: &str = "cache/patterns.pcache";
pub const DIM: usize = 8;

/// Id prefixes chosen so that byte order interleaves ASCII and non-ASCII ids
/// (and upper case sorts before lower case).
pub const ID_PREFIXES: &[&str] = &["p-", "Z", "é", "日本-", "a/", "\u{1F600}", "ß", "A", "e\u{301}"];
pub const DOMAINS: &[&str] = &["auth", "payments", "search", "ünïcode", "日本語"];
pub const TYPES: &[&str] = &["unit", "integration", "e2e", "property"];
pub const FRAMEWORKS: &[&str] = &["jest", "vitest", "mocha", "pytest", "unknown"];
pub const VERDICTS: &[&str] = &["success", "failure", "flaky", "unknown"];

/// SplitMix64: small, seedable, good enough to vary test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A finite f32 in [-1, 1).
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// The id of generated pattern `i` (unique per `i`).
pub fn id_of(rng: &mut Rng, i: usize) -> String {
    format!("{}{i:05}", rng.pick(ID_PREFIXES))
}

/// One valid pattern input with every optional field sometimes absent.
/// `createdAt` is always given so the stored value is predictable.
pub fn gen_input(rng: &mut Rng, i: usize, dim: usize) -> PatternInput {
    let some = |rng: &mut Rng| !rng.chance(3);
    PatternInput {
        id: id_of(rng, i),
        pattern_type: rng.pick(TYPES).to_string(),
        domain: rng.pick(DOMAINS).to_string(),
        framework: if some(rng) {
            Some(rng.pick(FRAMEWORKS).to_string())
        } else {
            None
        },
        content: if rng.chance(10) {
            String::new()
        } else {
            format!("expect(case {i}).toPass() // ✓ ünïcode {}", rng.next_u64())
        },
        embedding: (0..dim).map(|_| rng.unit_f32()).collect(),
        coverage: some(rng).then(|| rng.below(1001) as f64 / 1000.0),
        flakiness_score: some(rng).then(|| rng.below(1001) as f64 / 1000.0),
        verdict: some(rng).then(|| rng.pick(VERDICTS).to_string()),
        created_at: Some(1_700_000_000_000.0 + i as f64),
        last_used: some(rng).then(|| 1_700_000_500_000.0 + rng.below(1_000_000) as f64),
        usage_count: some(rng).then(|| rng.below(10_000) as f64),
        success_count: some(rng).then(|| rng.below(10_000) as f64),
        // Keys out of canonical order on purpose.
        metadata_json: some(rng).then(|| {
            format!(
                r#"{{ "z": {i}, "a": "{}", "nested": {{ "y": [1, 2.5], "b": null }} }}"#,
                rng.pick(DOMAINS)
            )
        }),
    }
}

/// `n` generated inputs with distinct ids, in generation order.
pub fn gen_inputs(seed: u64, n: usize, dim: usize) -> Vec<PatternInput> {
    let mut rng = Rng::new(seed);
    (0..n).map(|i| gen_input(&mut rng, i, dim)).collect()
}

/// What the store must hold for `input` (its documented defaults filled);
/// `now_ms` stands in for an absent `createdAt`.
pub fn expected(input: &PatternInput, now_ms: i64) -> Pattern {
    Pattern {
        id: input.id.clone(),
        pattern_type: input.pattern_type.clone(),
        domain: input.domain.clone(),
        framework: input.framework.clone().unwrap_or_else(|| "unknown".into()),
        content: input.content.clone(),
        embedding: input.embedding.clone(),
        coverage: input.coverage,
        flakiness_score: input.flakiness_score,
        verdict: input
            .verdict
            .as_deref()
            .map(|v| Verdict::parse(v).expect("generated verdicts are valid"))
            .unwrap_or(Verdict::Unknown),
        created_at: input.created_at.map(|c| c as i64).unwrap_or(now_ms),
        last_used: input.last_used.map(|c| c as i64),
        usage_count: input.usage_count.unwrap_or(0.0) as i64,
        success_count: input.success_count.unwrap_or(0.0) as i64,
        metadata_json: input.metadata_json.as_deref().map(|m| {
            serde_json::from_str::<serde_json::Value>(m)
                .expect("generated metadata is JSON")
                .to_string()
        }),
    }
}

/// The in-memory model: patterns by id (BTreeMap over `String` iterates in
/// UTF-8 byte order, which is the order every query must return).
#[derive(Debug, Default, Clone)]
pub struct Model(pub BTreeMap<String, Pattern>);

impl Model {
    pub fn from_inputs(inputs: &[PatternInput]) -> Model {
        let mut m = Model::default();
        m.store(inputs);
        m
    }

    pub fn store(&mut self, inputs: &[PatternInput]) {
        for i in inputs {
            self.0.insert(i.id.clone(), expected(i, 0));
        }
    }

    pub fn all(&self) -> Vec<Pattern> {
        self.0.values().cloned().collect()
    }

    pub fn query(&self, f: &PatternFilter) -> Vec<Pattern> {
        self.0
            .values()
            .filter(|p| f.domain.as_ref().is_none_or(|d| *d == p.domain))
            .filter(|p| f.pattern_type.as_ref().is_none_or(|t| *t == p.pattern_type))
            .filter(|p| f.framework.as_ref().is_none_or(|fw| *fw == p.framework))
            .take(f.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }
}

pub fn gen_config(i: usize) -> AgentConfigInput {
    AgentConfigInput {
        agent_id: format!("{}agent-{i}", ["", "ä", "Ω"][i % 3]),
        agent_type: ["generator", "analyzer"][i % 2].into(),
        config_json: format!(r#"{{"level":{i},"tags":["x","ÿ"]}}"#),
        version: format!("1.{i}.0"),
        updated_at: 1_700_000_000_000.0 + i as f64,
    }
}

pub fn expected_config(c: &AgentConfigInput) -> AgentConfig {
    AgentConfig {
        agent_id: c.agent_id.clone(),
        agent_type: c.agent_type.clone(),
        config_json: c.config_json.clone(),
        version: c.version.clone(),
        updated_at: c.updated_at as i64,
    }
}

/// The options every test starts from: paths inside `dir`, and a
/// generation check on every read (so no test needs to wait).
pub fn base_input() -> ConfigInput {
    ConfigInput {
        db_path: Some(DB_REL.into()),
        cache_path: Some(CACHE_REL.into()),
        check_interval_ms: Some(0.0),
        ..Default::default()
    }
}

pub fn config(dir: &Path, edit: impl FnOnce(&mut ConfigInput)) -> Config {
    let mut input = base_input();
    edit(&mut input);
    Config::resolve(&input, dir).expect("valid test config")
}

pub fn open(dir: &Path, edit: impl FnOnce(&mut ConfigInput)) -> PatternCache {
    PatternCache::open(config(dir, edit), None).expect("open pattern cache")
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_REL)
}

pub fn cache_path(dir: &Path) -> PathBuf {
    dir.join(CACHE_REL)
}

/// Every pattern in the database, read straight from SQLite in id order.
pub fn sqlite_all(db_path: &Path) -> Vec<Pattern> {
    let opened = Database::open(db_path).expect("open database");
    opened
        .db
        .read(|c| queries::query(c, &PatternFilter::default()))
        .expect("read all patterns")
}

/// Every agent config in the database, in agent id order.
pub fn sqlite_configs(db_path: &Path) -> Vec<AgentConfig> {
    let opened = Database::open(db_path).expect("open database");
    opened.db.read(queries::all_configs).expect("read all configs")
}

/// Writes `inputs` (in batches of `batch`, in the order given) and `configs`
/// into the database under `dir`, with tier 1 disabled.
pub fn fill_db(dir: &Path, inputs: &[PatternInput], batch: usize, configs: &[AgentConfigInput]) {
    let cache = open(dir, |c| c.enabled = Some(false));
    for chunk in inputs.chunks(batch.max(1)) {
        cache.store_patterns(chunk).expect("store patterns");
    }
    for c in configs {
        cache.store_agent_config(c).expect("store config");
    }
    cache.shutdown();
}

/// Builds the cache file for the database under `dir` (forced) and returns its bytes.
pub fn build_file(dir: &Path) -> Vec<u8> {
    let opened = Database::open(&db_path(dir)).expect("open database");
    let paths = CachePaths::new(&cache_path(dir));
    let built = cache_file::build(&opened.db, &paths, true, &Default::default()).expect("build cache file");
    assert!(built.wrote);
    let bytes = std::fs::read(&paths.file).expect("read cache file");
    assert_eq!(bytes.len() as u64, built.file_size);
    bytes
}
pub mod proxy;
