//! The typed configuration tree (STYLE: defaults < `agora.toml` < `AGORA_*` env <
//! flags). Unknown keys are an error that names the key; the database URL redacts
//! its password wherever the configuration is printed.

use crate::llm::LlmConfig;
use crate::orchestrator::SandboxChoice;
use crate::store::{redact, MarketSetup};
use agora_core::attention::RewardRates;
use agora_core::pricing::{PriceBounds, PricePolicy};
use agora_core::{Bundle, BundleLimits, BundleSpec, Credits, Price, Prices, Resource};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which `AGORA_*` variables are configuration: nested keys (`AGORA_SECTION__KEY`,
/// where an unknown section or key is an error naming it) and these top-level keys.
/// Other `AGORA_*` variables (`AGORA_DATA_DIR`, `AGORA_REQUIRE_DOCKER`, what the
/// sandbox gives an agent, …) are not configuration and are left alone.
const TOP_LEVEL_ENV_KEYS: &[&str] = &["database_url"];

fn is_config_env(key: &str) -> bool {
    key.contains("__")
        || TOP_LEVEL_ENV_KEYS
            .iter()
            .any(|k| key.eq_ignore_ascii_case(k))
}

/// A database URL. It may carry a password, so its `Debug` form is redacted.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact(&self.0))
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the SQLite file, config, tokens, workspaces and logs live. Set by
    /// `--data-dir` or `AGORA_DATA_DIR`, not in `agora.toml` (which lives in it).
    #[serde(skip)]
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL (also read from `DATABASE_URL`); empty
    /// means the SQLite file `agora.db` in the data directory.
    pub database_url: DatabaseUrl,
    pub server: ServerConfig,
    pub economy: EconomyConfig,
    pub attention: AttentionConfig,
    pub market: MarketConfig,
    pub limits: LimitsConfig,
    pub genesis: GenesisConfig,
    /// The LLM proxy's upstream and limits (SPEC §10).
    pub llm: LlmConfig,
    pub orchestrator: OrchestratorConfig,
    /// `system.log`'s rotation (SPEC §13).
    pub log: LogConfig,
}

/// `system.log` in the data directory: JSON lines, rotated by size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `system.log` is renamed to `system.log.1` (and older ones shifted) before a
    /// line would take it past this many MiB. 0: never rotated.
    pub max_file_mb: u64,
    /// Rotated files kept (`system.log.1` … `.N`); older ones are deleted. 0 keeps
    /// none: a full `system.log` starts again empty.
    pub max_files: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_file_mb: 100,
            max_files: 5,
        }
    }
}

/// The Orchestrator's loop and sandbox (SPEC §6, §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestratorConfig {
    /// `auto` (docker when it works here, else process), `docker` or `process`.
    pub sandbox: SandboxChoice,
    /// Sandboxes starting at once; winners beyond it wait their turn.
    pub max_concurrent_launches: usize,
    /// When agora runs as root, agent N runs as uid `agent_uid_base + N`. Worlds
    /// sharing a host need disjoint ranges.
    pub agent_uid_base: u32,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            sandbox: SandboxChoice::Auto,
            max_concurrent_launches: 4,
            agent_uid_base: 100_000,
        }
    }
}

/// The genesis agent's first bid, placed at bootstrap (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenesisConfig {
    pub first_bid_amount: Credits,
    pub first_bid: BundleSpec,
}

impl Default for GenesisConfig {
    fn default() -> Self {
        GenesisConfig {
            first_bid_amount: credits(50),
            first_bid: BundleSpec {
                cpu_seconds: 2.0,
                memory_mb: 256.0,
                tokens: 4000.0,
                attention_share: 0.5,
                wall_seconds: None,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// TCP address of the System Service.
    pub listen: String,
    /// The longest a live event stream stays open; the client then reconnects
    /// with `Last-Event-ID` and misses nothing. 0 means no limit.
    pub event_stream_max_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EconomyConfig {
    /// Credits granted to the genesis agent on first start.
    pub initial_genesis_credits: Credits,
    /// Fee burned for each spawn.
    pub spawn_cost: Credits,
    /// Fee burned for each message.
    pub message_cost: Credits,
    /// Pending bids one agent may have at once.
    pub max_pending_bids: i64,
    /// Cycles a bid stays pending before it expires.
    pub bid_ttl_cycles: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttentionConfig {
    /// Seconds a prompt waits for a rating before it expires.
    pub prompt_ttl_seconds: u64,
    /// Credits minted per point of each score.
    pub rate_interesting: Credits,
    pub rate_useful: Credits,
    pub rate_understandable: Credits,
}

/// One market's supply and prices, in displayed units (credits per CPU second, per
/// MB, per token, per whole attention share).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketEntry {
    /// Supply per cycle (memory: the pool running executions hold). For CPU,
    /// unset means host cores × cycle seconds.
    pub supply: Option<f64>,
    pub price: Credits,
    pub min_price: Credits,
    pub max_price: Credits,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketConfig {
    /// Time between allocation cycles.
    pub cycle_interval_ms: u64,
    pub high_utilisation: f64,
    pub low_utilisation: f64,
    pub raise_factor: f64,
    pub lower_factor: f64,
    pub cpu_seconds: MarketEntry,
    pub memory_mb: MarketEntry,
    pub tokens: MarketEntry,
    pub attention_share: MarketEntry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_cpu_seconds: f64,
    pub max_memory_mb: f64,
    pub max_tokens: f64,
    pub max_wall_seconds: f64,
    /// Wall-clock window of a bundle that names none.
    pub default_wall_seconds: f64,
}

fn credits(c: i64) -> Credits {
    Credits::from_micros(c * 1_000_000)
}

fn micro(m: i64) -> Credits {
    Credits::from_micros(m)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./agora-data"),
            database_url: DatabaseUrl::default(),
            server: ServerConfig::default(),
            economy: EconomyConfig::default(),
            attention: AttentionConfig::default(),
            market: MarketConfig::default(),
            limits: LimitsConfig::default(),
            genesis: GenesisConfig::default(),
            llm: LlmConfig::default(),
            orchestrator: OrchestratorConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:7700".into(),
            event_stream_max_seconds: 3600,
        }
    }
}

impl Default for EconomyConfig {
    fn default() -> Self {
        EconomyConfig {
            initial_genesis_credits: credits(1000),
            spawn_cost: credits(10),
            message_cost: micro(100_000),
            max_pending_bids: 10,
            bid_ttl_cycles: 20,
        }
    }
}

impl Default for AttentionConfig {
    fn default() -> Self {
        AttentionConfig {
            prompt_ttl_seconds: 600,
            rate_interesting: credits(50),
            rate_useful: credits(50),
            rate_understandable: credits(50),
        }
    }
}

impl Default for MarketConfig {
    fn default() -> Self {
        let entry = |supply: Option<f64>, price: Credits, min: Credits, max: Credits| MarketEntry {
            supply,
            price,
            min_price: min,
            max_price: max,
        };
        MarketConfig {
            cycle_interval_ms: 5000,
            high_utilisation: 0.8,
            low_utilisation: 0.2,
            raise_factor: 1.10,
            lower_factor: 0.95,
            cpu_seconds: entry(None, credits(1), micro(1_000), credits(1_000)),
            memory_mb: entry(Some(4096.0), micro(100_000), micro(100), credits(100)),
            tokens: entry(Some(100_000.0), micro(1_000), micro(1), credits(1)),
            attention_share: entry(Some(1.0), credits(10), micro(10_000), credits(100_000)),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let b = BundleLimits::default();
        LimitsConfig {
            max_cpu_seconds: b.max_cpu_seconds,
            max_memory_mb: b.max_memory_mb,
            max_tokens: b.max_tokens,
            max_wall_seconds: b.max_wall_seconds,
            default_wall_seconds: 60.0,
        }
    }
}

/// A configuration that failed to load or validate; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key {key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Overrides given on the command line; highest precedence.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub cycle_interval_ms: Option<u64>,
    pub sandbox: Option<SandboxChoice>,
}

impl Config {
    /// Loads the configuration for `data_dir`: defaults, then `config_file` (or
    /// `<data_dir>/agora.toml` if it exists), then `AGORA_*` variables (nested keys
    /// with `__`, e.g. `AGORA_ECONOMY__SPAWN_COST=5`) and `DATABASE_URL`, then flags.
    pub fn load(
        data_dir: &Path,
        config_file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        Config::load_from(
            data_dir,
            config_file,
            overrides,
            Env::prefixed("AGORA_"),
            std::env::var("DATABASE_URL").ok(),
        )
    }

    fn load_from(
        data_dir: &Path,
        config_file: Option<&Path>,
        overrides: &Overrides,
        env: Env,
        database_url_env: Option<String>,
    ) -> Result<Config, ConfigError> {
        let default_file = data_dir.join("agora.toml");
        let file = match config_file {
            Some(f) if !f.exists() => {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    f.display()
                )))
            }
            Some(f) => Some(f.to_path_buf()),
            None => default_file.exists().then_some(default_file),
        };
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = &file {
            fig = fig.merge(Toml::file(f));
        }
        let env = env.filter(|k| is_config_env(k.as_str())).split("__");
        fig = fig.merge(env);
        if let Some(url) = database_url_env.filter(|u| !u.is_empty()) {
            fig = fig.merge(Serialized::default("database_url", url));
        }
        if let Some(v) = &overrides.listen {
            fig = fig.merge(Serialized::default("server.listen", v));
        }
        if let Some(v) = &overrides.database_url {
            fig = fig.merge(Serialized::default("database_url", v));
        }
        if let Some(v) = overrides.cycle_interval_ms {
            fig = fig.merge(Serialized::default("market.cycle_interval_ms", v));
        }
        if let Some(v) = overrides.sandbox {
            fig = fig.merge(Serialized::default("orchestrator.sandbox", v));
        }
        let mut config: Config = fig
            .extract()
            .map_err(|e| ConfigError::Load(figment_message(e)))?;
        // Absolute, so that workspaces, sockets and logs are the same paths whatever
        // the working directory of whoever reads them (sandboxes refuse relative ones).
        config.data_dir = std::path::absolute(data_dir)
            .map_err(|e| ConfigError::Load(format!("data dir {}: {e}", data_dir.display())))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let e = &self.economy;
        if e.max_pending_bids < 1 {
            return Err(invalid("economy.max_pending_bids", "must be at least 1"));
        }
        if e.bid_ttl_cycles < 1 {
            return Err(invalid("economy.bid_ttl_cycles", "must be at least 1"));
        }
        if !e.initial_genesis_credits.is_positive() {
            return Err(invalid(
                "economy.initial_genesis_credits",
                "must be greater than 0",
            ));
        }
        if self.attention.prompt_ttl_seconds == 0 {
            return Err(invalid(
                "attention.prompt_ttl_seconds",
                "must be at least 1",
            ));
        }
        if self.orchestrator.max_concurrent_launches == 0 {
            return Err(invalid(
                "orchestrator.max_concurrent_launches",
                "must be at least 1",
            ));
        }
        if self.orchestrator.agent_uid_base < 1000 {
            return Err(invalid(
                "orchestrator.agent_uid_base",
                "must be at least 1000, above system and login accounts",
            ));
        }
        let m = &self.market;
        if m.cycle_interval_ms < 10 {
            return Err(invalid("market.cycle_interval_ms", "must be at least 10"));
        }
        self.price_policy()
            .validate()
            .map_err(|msg| invalid("market", msg))?;
        for (r, entry) in self.market_entries() {
            let key = format!("market.{}", r.as_str());
            if entry.min_price > entry.max_price {
                return Err(invalid(
                    &format!("{key}.min_price"),
                    "must not exceed max_price",
                ));
            }
            if entry.price < entry.min_price || entry.price > entry.max_price {
                return Err(invalid(
                    &format!("{key}.price"),
                    "must be between min_price and max_price",
                ));
            }
            if let Some(s) = entry.supply {
                r.to_base(s)
                    .map_err(|err| invalid(&format!("{key}.supply"), err.to_string()))?;
            }
        }
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_cpu_seconds", l.max_cpu_seconds),
            ("limits.max_memory_mb", l.max_memory_mb),
            ("limits.max_tokens", l.max_tokens),
            ("limits.max_wall_seconds", l.max_wall_seconds),
            ("limits.default_wall_seconds", l.default_wall_seconds),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err(invalid(key, "must be a finite number greater than 0"));
            }
        }
        if l.default_wall_seconds > l.max_wall_seconds {
            return Err(invalid(
                "limits.default_wall_seconds",
                "must not exceed limits.max_wall_seconds",
            ));
        }
        let bundle = self.genesis_bundle()?;
        let initial = Prices(self.market_entries().map(|(_, e)| Price(e.price.micros())));
        let reserve = initial.reserve(&bundle);
        if self.genesis.first_bid_amount < reserve {
            return Err(invalid(
                "genesis.first_bid_amount",
                format!("is below the first bid's reserve price {reserve} at the initial prices"),
            ));
        }
        if self.genesis.first_bid_amount > self.economy.initial_genesis_credits {
            return Err(invalid(
                "genesis.first_bid_amount",
                "exceeds economy.initial_genesis_credits",
            ));
        }
        if !self.database_url.0.is_empty()
            && crate::store::Backend::from_url(&self.database_url.0).is_none()
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:// or postgres://",
            ));
        }
        self.llm
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        Ok(())
    }

    /// The database URL in force: the configured one, or the SQLite file in the
    /// data directory.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.0.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("agora.db").display()
            )
        } else {
            self.database_url.0.clone()
        }
    }

    /// The configuration as TOML, with the database password redacted.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database_url = DatabaseUrl(redact(&self.database_url.0));
        let mut out = format!(
            "# data_dir = {:?} (from --data-dir / AGORA_DATA_DIR)\n",
            self.data_dir.display().to_string()
        );
        out.push_str(
            &toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot print: {e}\n")),
        );
        out
    }

    pub fn bundle_limits(&self) -> BundleLimits {
        BundleLimits {
            max_cpu_seconds: self.limits.max_cpu_seconds,
            max_memory_mb: self.limits.max_memory_mb,
            max_tokens: self.limits.max_tokens,
            max_wall_seconds: self.limits.max_wall_seconds,
        }
    }

    /// The genesis agent's first bundle, validated against the limits.
    pub fn genesis_bundle(&self) -> Result<Bundle, ConfigError> {
        Bundle::parse(&self.genesis.first_bid, &self.bundle_limits())
            .map_err(|e| invalid("genesis.first_bid", e.to_string()))
    }

    pub fn price_policy(&self) -> PricePolicy {
        PricePolicy {
            high_utilisation: self.market.high_utilisation,
            low_utilisation: self.market.low_utilisation,
            raise_factor: self.market.raise_factor,
            lower_factor: self.market.lower_factor,
        }
    }

    pub fn price_bounds(&self) -> [PriceBounds; 4] {
        self.market_entries().map(|(_, e)| PriceBounds {
            min: Price(e.min_price.micros()),
            max: Price(e.max_price.micros()),
        })
    }

    pub fn reward_rates(&self) -> RewardRates {
        RewardRates {
            interesting: self.attention.rate_interesting,
            useful: self.attention.rate_useful,
            understandable: self.attention.rate_understandable,
        }
    }

    fn market_entries(&self) -> [(Resource, &MarketEntry); 4] {
        let m = &self.market;
        [
            (Resource::CpuSeconds, &m.cpu_seconds),
            (Resource::MemoryMb, &m.memory_mb),
            (Resource::Tokens, &m.tokens),
            (Resource::AttentionShare, &m.attention_share),
        ]
    }

    /// The markets as the store sets them up. CPU supply defaults to host cores ×
    /// cycle seconds (SPEC §5), counting at least one second per cycle: executions
    /// outlive short cycles, and at 100 ms a supply of 0.2 CPU-seconds would let no
    /// ordinary bundle ever win (docs/decisions.md).
    pub fn market_setups(&self) -> Vec<MarketSetup> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        let cycle_s = (self.market.cycle_interval_ms as f64 / 1000.0).max(1.0);
        self.market_entries()
            .into_iter()
            .map(|(r, e)| {
                let supply = e.supply.unwrap_or(match r {
                    Resource::CpuSeconds => cores * cycle_s,
                    _ => 0.0,
                });
                MarketSetup {
                    resource: r,
                    capacity: r.to_base(supply).unwrap_or(0),
                    initial_price: Price(e.price.micros()),
                    min_price: Price(e.min_price.micros()),
                    max_price: Price(e.max_price.micros()),
                }
            })
            .collect()
    }
}

/// Figment's error with the key path it concerns, on one line.
fn figment_message(e: figment::Error) -> String {
    e.into_iter()
        .map(|err| {
            let path = err.path.join(".");
            if path.is_empty() {
                err.kind.to_string()
            } else {
                format!("{path}: {}", err.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;

    /// Loads with the jail's environment and working directory as data dir.
    fn load(o: &Overrides) -> Result<Config, ConfigError> {
        Config::load_from(
            Path::new("."),
            None,
            o,
            Env::prefixed("AGORA_"),
            std::env::var("DATABASE_URL").ok(),
        )
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::default();
        assert_eq!(c.economy.initial_genesis_credits.to_string(), "1000");
        assert_eq!(c.economy.spawn_cost.to_string(), "10");
        assert_eq!(c.economy.message_cost.to_string(), "0.1");
        assert_eq!(c.market.cycle_interval_ms, 5000);
        assert_eq!(c.market.cpu_seconds.price.to_string(), "1");
        assert_eq!(c.market.memory_mb.price.to_string(), "0.1");
        assert_eq!(c.market.tokens.price.to_string(), "0.001");
        assert_eq!(c.market.attention_share.price.to_string(), "10");
        assert_eq!(c.attention.rate_useful.to_string(), "50");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "agora.toml",
                "[economy]\nspawn_cost = 5\nmessage_cost = \"0.25\"\n[market]\ncycle_interval_ms = 1000\n",
            )?;
            jail.set_env("AGORA_ECONOMY__SPAWN_COST", "7");
            jail.set_env("AGORA_REQUIRE_DOCKER", "1");
            let c = load(&Overrides {
                cycle_interval_ms: Some(100),
                ..Overrides::default()
            })
            .unwrap();
            assert_eq!(c.economy.spawn_cost.to_string(), "7");
            assert_eq!(c.economy.message_cost.to_string(), "0.25");
            assert_eq!(c.market.cycle_interval_ms, 100);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("agora.toml", "[economy]\nspawn_cots = 5\n")?;
            let e = load(&Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("spawn_cots"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("AGORA_MARKET__CYCLE_INTERVALL_MS", "5");
            let e = load(&Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("cycle_intervall_ms"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn invalid_values_name_their_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("agora.toml", "[economy]\nspawn_cost = -1\n")?;
            let e = load(&Overrides::default()).unwrap_err().to_string();
            assert!(
                e.contains("economy.spawn_cost") && e.contains("negative"),
                "{e}"
            );
            jail.create_file(
                "agora.toml",
                "[market.tokens]\nsupply = 10\nprice = 0.5\nmin_price = 1\nmax_price = 2\n",
            )?;
            let e = load(&Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("market.tokens.price"), "{e}");
            jail.create_file("agora.toml", "[economy]\nmessage_cost = 0.0000001\n")?;
            let e = load(&Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("6 decimals"), "{e}");
            jail.create_file("agora.toml", "database_url = \"mysql://x\"\n")?;
            let e = load(&Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("database_url"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_llm_section_layers_like_the_others() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "agora.toml",
                "[llm]\nbase_url = \"http://127.0.0.1:8080/v1\"\nmodels = [\"m\"]\n",
            )?;
            jail.set_env("AGORA_LLM__MAX_CONCURRENT_PER_EXECUTION", "2");
            jail.set_env("AGORA_LLM__TOKENIZE", "vllm");
            let c = load(&Overrides::default()).unwrap();
            assert_eq!(c.llm.base_url.as_deref(), Some("http://127.0.0.1:8080/v1"));
            assert_eq!(c.llm.models, vec!["m".to_string()]);
            assert_eq!(c.llm.max_concurrent_per_execution, 2);
            assert_eq!(c.llm.tokenize, crate::llm::TokenizeMode::Vllm);
            assert!(c.to_toml().contains("[llm]"), "{}", c.to_toml());
            jail.set_env("AGORA_LLM__BASE_URL", "file:///etc/passwd");
            let e = load(&Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("llm.base_url"), "{e}");
            jail.set_env("AGORA_LLM__BASE_URL", "http://127.0.0.1:1/v1");
            jail.set_env("AGORA_LLM__API_KEYS_ENV", "X");
            let e = load(&Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("api_keys_env"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn database_url_comes_from_env_and_is_redacted_when_printed() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://agora:hunter2@127.0.0.1/agora");
            let c = load(&Overrides::default()).unwrap();
            assert_eq!(
                c.effective_database_url(),
                "postgres://agora:hunter2@127.0.0.1/agora"
            );
            let shown = c.to_toml();
            assert!(
                !format!("{c:?}").contains("hunter2"),
                "Debug redacts the password"
            );
            assert!(
                !shown.contains("hunter2") && shown.contains("agora:***@"),
                "{shown}"
            );
            Ok(())
        });
    }
}
