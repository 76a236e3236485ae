//! The remote's connection string, TLS and connections.
//!
//! libpq's `sslmode` values are all accepted (tokio-postgres knows only
//! disable/prefer/require, so the verify modes are taken out of the string
//! and carried by the rustls verifier). The password stays inside the
//! tokio-postgres config: what this module shows of a remote is `describe`,
//! host, port, database and user.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::schema::SchemaName;
use super::tls::{client_config, TlsMode};
use crate::error::{Error, Result};

/// How long a connection attempt may take when the string does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one call may take unless `remote.timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Called with each NOTIFY payload a connection receives, and with `None`
/// once the connection has ended (so a waiting syncer reconnects at once).
pub type OnNotify = Box<dyn Fn(Option<&str>) + Send + Sync>;

/// A parsed remote: what to connect to and how.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    description: String,
    /// The longest one call may take; the server is told the same.
    timeout: Duration,
    /// The schema the bank lives in.
    schema: SchemaName,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// Splits `sslmode` and `sslrootcert` out of a URL or key=value string:
/// (the rest, sslmode, sslrootcert).
fn take_tls_options(url: &str) -> Result<(String, Option<String>, Option<String>)> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: String| -> bool {
        match key {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => return false,
        }
        true
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(k, percent_decode(v)?) {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, mode, root))
    } else {
        let mut kept = Vec::new();
        for (k, v) in key_values(url)? {
            if !take(&k, v.clone()) {
                // Quoted again, so a value keeps its spaces and quotes exactly.
                kept.push(format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")));
            }
        }
        Ok((kept.join(" "), mode, root))
    }
}

/// The pairs of a key=value connection string as libpq reads them: spaces
/// allowed around `=`; a value single-quoted (with `\'` and `\\` escapes,
/// spaces kept exactly) or bare up to the next space (with `\` escapes).
fn key_values(s: &str) -> Result<Vec<(String, String)>> {
    let bad =
        |why: &str| Error::InvalidArgument(format!("remote.url is not a valid key=value connection string: {why}"));
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad(&format!("'{key}' has no value")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().ok_or_else(|| bad("a value ends in a backslash"))?),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(bad(&format!("the value of '{key}' has no closing quote"))),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next().ok_or_else(|| bad("a value ends in a backslash"))?);
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

fn percent_decode(v: &str) -> Result<String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::InvalidArgument("remote.url has a bad %-escape in its options".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::InvalidArgument("remote.url options are not UTF-8".into()))
}

impl Target {
    /// Parses a libpq-style connection string. Errors never repeat the string
    /// (it may hold a password).
    pub fn parse(url: &str) -> Result<Target> {
        let (rest, mode, root) = take_tls_options(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            // tokio-postgres's parse errors name the option, never its value.
            Error::InvalidArgument(format!("remote.url is not a valid PostgreSQL connection string: {e}"))
        })?;
        let mode = match mode.as_deref() {
            None | Some("prefer") => TlsMode::Prefer,
            Some("disable") => TlsMode::Disable,
            Some("allow") => TlsMode::Allow,
            Some("require") => TlsMode::Require,
            Some("verify-ca") => TlsMode::VerifyCa,
            Some("verify-full") => TlsMode::VerifyFull,
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                "remote.url: sslmode must be disable, allow, prefer, require, verify-ca or verify-full, got '{other}'"
            )))
            }
        };
        config.ssl_mode(match mode {
            TlsMode::Disable => SslMode::Disable,
            // allow (plain first, TLS if refused) is rarely what anyone wants; prefer is a superset.
            TlsMode::Allow | TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives(true).keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("pattern-cache");
        }
        if config.get_hosts().is_empty() {
            return Err(Error::InvalidArgument("remote.url names no host".into()));
        }
        let description = describe(&config);
        let tls = MakeRustlsConnect::new(client_config(mode, root.as_deref())?);
        Ok(Target {
            config,
            tls,
            description,
            timeout: DEFAULT_TIMEOUT,
            schema: SchemaName::default(),
        })
    }

    /// This target with calls limited to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Target {
        self.timeout = timeout;
        self
    }

    /// This target with the bank in `schema`.
    pub fn with_schema(mut self, schema: SchemaName) -> Target {
        self.schema = schema;
        self
    }

    /// The schema the bank lives in.
    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// The longest one call may take before the remote is taken for unavailable.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The server-side limits every session sets at connect, so that nothing
    /// a vanished or stuck client began holds the bank for long: a statement
    /// ends at the call's own timeout, a lock wait at half of it, and a
    /// transaction left idle (a sync pass whose client froze) at three times it.
    /// The statement ends a little before the call's timeout, so that a
    /// write the server gave up on is known to be rolled back.
    fn session_limits(&self) -> String {
        let ms = self.timeout.as_millis().max(10);
        format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; SET idle_in_transaction_session_timeout = {}",
            ms * 9 / 10,
            ms / 2,
            ms * 3
        )
    }

    /// host:port/database as user: what errors, events and logs show.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Connects; the connection's task runs on the runtime, passing
    /// notifications to `notified`, and its end (the client dropped, or the
    /// connection broken).
    pub async fn connect(&self, notified: Option<OnNotify>) -> Result<Client> {
        let (client, mut connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.unavailable(&e))?;
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            use futures_util::StreamExt;
            while let Some(Ok(message)) = messages.next().await {
                if let (tokio_postgres::AsyncMessage::Notification(n), Some(f)) = (&message, &notified) {
                    f(Some(n.payload()));
                }
            }
            if let Some(f) = &notified {
                f(None);
            }
        });
        client
            .batch_execute(&self.session_limits())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(client)
    }

    /// Maps a tokio-postgres error: a broken or refused connection is
    /// `RemoteUnavailable`, anything the server said is `Remote`.
    pub fn error(&self, e: &tokio_postgres::Error) -> Error {
        match e.as_db_error() {
            Some(db) if !is_connection_state(db.code().code()) => Error::Remote(format!(
                "{} [{}] {}{}",
                self.description,
                db.code().code(),
                db.message(),
                db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
            )),
            _ => self.unavailable(e),
        }
    }

    pub fn unavailable(&self, e: &tokio_postgres::Error) -> Error {
        let cause = std::error::Error::source(e)
            .map(|s| format!("{e}: {s}"))
            .unwrap_or_else(|| e.to_string());
        Error::RemoteUnavailable(format!("{}: {cause}", self.description))
    }
}

/// SQLSTATE classes that mean "the server went away or is not ready":
/// connection exceptions (08), shutdown (57P01-57P03), too many connections.
fn is_connection_state(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres {host}:{port}/{} as {}",
        config.get_dbname().unwrap_or("(default)"),
        config.get_user().unwrap_or("(default user)")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        let t = Target::parse("postgres://alice:s3cret-pw@db.example:6543/bank?sslmode=verify-full&sslrootcert=system")
            .or_else(|_| Target::parse("postgres://alice:s3cret-pw@db.example:6543/bank?sslmode=require"))
            .unwrap();
        assert_eq!(t.describe(), "postgres db.example:6543/bank as alice");
        assert!(!format!("{t:?}").contains("s3cret"));
        for bad in [
            "postgres://alice:s3cret-pw@db.example/bank?sslmode=bogus",
            "postgres://alice:s3cret-pw@db.example/bank?nosuchoption=1",
            "host=db.example password=s3cret-pw nosuch=1",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert_eq!(e.code(), "INVALID_ARGUMENT");
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn tls_options_are_taken_out() {
        let (rest, mode, root) =
            take_tls_options("postgres://u@h/d?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u@h/d?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        let (rest, mode, _) = take_tls_options("host=h user=u sslmode=require").unwrap();
        assert_eq!(rest, "host='h' user='u'");
        assert_eq!(mode.as_deref(), Some("require"));
        // Quoted values keep their runs of spaces, quotes and backslashes.
        let (rest, mode, root) = take_tls_options(
            r"host = h password='a  b\'c\\d' sslmode = 'verify-ca' sslrootcert='/x y/ca.pem' dbname=p\ q",
        )
        .unwrap();
        assert_eq!(rest, r"host='h' password='a  b\'c\\d' dbname='p q'");
        assert_eq!(
            (mode.as_deref(), root.as_deref()),
            (Some("verify-ca"), Some("/x y/ca.pem"))
        );
        let parsed = tokio_postgres::Config::from_str(&rest).unwrap();
        assert_eq!(parsed.get_password(), Some(&b"a  b'c\\d"[..]));
        assert_eq!(parsed.get_dbname(), Some("p q"));
        for bad in ["host", "host='h", "host=h\\"] {
            assert_eq!(take_tls_options(bad).unwrap_err().code(), "INVALID_ARGUMENT", "{bad}");
        }
        let t = Target::parse("postgres://u@h/d?sslmode=disable").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        let t = Target::parse("postgres://u@h/d?sslmode=verify-ca").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
    }
}
