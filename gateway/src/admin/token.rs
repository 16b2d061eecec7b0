//! The admin token: where it comes from and how it is checked.
//!
//! A node must never expose its admin API unauthenticated, not even on first start
//! with no config. So the token is `AURORA_ADMIN_TOKEN` when the operator sets it, and
//! otherwise a random token generated once and kept in `<data-dir>/admin_token` (mode
//! 0600), which the binary prints to stderr the one time it is created. Reading the
//! environment is the binary's job; this module takes the value as an argument.
//!
//! Comparison is constant-time (`subtle`), so response timing does not reveal how many
//! leading bytes of a guess were right.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq as _;

/// Shortest admin token accepted, in characters (a generated one has 64).
pub const MIN_TOKEN_CHARS: usize = 32;

/// File name of the generated token inside the data directory.
pub const TOKEN_FILE: &str = "admin_token";

/// The admin token. Its `Debug` output hides the value so it never lands in logs.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Where the token came from; the binary prints a generated one once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// From `AURORA_ADMIN_TOKEN`.
    Env,
    /// Read from a token file an earlier start created.
    File(PathBuf),
    /// Generated now and written to this file.
    Generated(PathBuf),
}

/// Why the token could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `AURORA_ADMIN_TOKEN` is set but blank: almost certainly a deployment mistake,
    /// and an empty token must never be accepted.
    #[error("AURORA_ADMIN_TOKEN is set but empty; unset it to use a generated token")]
    EmptyEnv,
    /// The token file exists but holds no token.
    #[error("admin token file {0} is empty; delete it to generate a new token")]
    EmptyFile(PathBuf),
    /// Reading or writing the token file failed.
    #[error("admin token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A token shorter than [`MIN_TOKEN_CHARS`]: guessable online, and the admin API
    /// it opens can create keys and read every record.
    #[error("{setting} holds a token of {chars} characters; it must be at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 32`)")]
    TooShort {
        /// `AURORA_ADMIN_TOKEN` or the token file's path.
        setting: String,
        /// Its length in characters.
        chars: usize,
    },
    /// The OS random source failed.
    #[error("could not generate an admin token: {0}")]
    Random(getrandom::Error),
}

impl AdminToken {
    /// A token with this exact value (tests, and `AURORA_ADMIN_TOKEN`).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The token's value, to show the operator once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is the token, compared in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        // An empty token is refused by construction, but check anyway: matching "" would
        // open the admin API to anyone.
        !self.0.is_empty() && bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The token from `env_value` if given, otherwise from (or newly into)
    /// `<data_dir>/admin_token`. The data directory must exist.
    pub fn load_or_create(
        env_value: Option<String>,
        data_dir: &Path,
    ) -> Result<(Self, TokenSource), TokenError> {
        if let Some(value) = env_value {
            let value = value.trim();
            if value.is_empty() {
                return Err(TokenError::EmptyEnv);
            }
            check_length("AURORA_ADMIN_TOKEN", value)?;
            return Ok((Self::new(value), TokenSource::Env));
        }
        let path = data_dir.join(TOKEN_FILE);
        match read_token(&path)? {
            Some(token) => {
                check_length(&path.display().to_string(), token.expose())?;
                Ok((token, TokenSource::File(path)))
            }
            None => {
                let token = generate()?;
                match write_new(&path, token.expose()) {
                    Ok(()) => Ok((token, TokenSource::Generated(path))),
                    // Another process created it between our read and write: use theirs.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_token(&path)?
                        .map(|t| (t, TokenSource::File(path.clone())))
                        .ok_or(TokenError::EmptyFile(path)),
                    Err(source) => Err(TokenError::Io { path, source }),
                }
            }
        }
    }
}

fn check_length(setting: &str, value: &str) -> Result<(), TokenError> {
    let chars = value.chars().count();
    if chars < MIN_TOKEN_CHARS {
        return Err(TokenError::TooShort {
            setting: setting.to_owned(),
            chars,
        });
    }
    Ok(())
}

fn read_token(path: &Path) -> Result<Option<AdminToken>, TokenError> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let value = text.trim();
            if value.is_empty() {
                Err(TokenError::EmptyFile(path.to_owned()))
            } else {
                Ok(Some(AdminToken::new(value)))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// 32 random bytes, hex: 256 bits, safe to put in a header or a shell variable.
fn generate() -> Result<AdminToken, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(TokenError::Random)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(AdminToken::new(format!("aurora-admin-{hex}")))
}

/// Creates `path` (failing if it exists), readable by the owner only from the start,
/// so the token is never briefly world-readable.
fn write_new(path: &Path, value: &str) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(value.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "aurora-token-{name}-{}-{:x}",
            std::process::id(),
            getrandom::u64().unwrap_or(0)
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn verify_is_exact() {
        let t = AdminToken::new("secret");
        assert!(t.verify("secret"));
        assert!(!t.verify("secre"));
        assert!(!t.verify("secret2"));
        assert!(!t.verify(""));
        assert!(!AdminToken::new("").verify(""));
    }

    #[test]
    fn env_wins_and_empty_env_is_refused() {
        let dir = temp_dir("env");
        let long = "a".repeat(MIN_TOKEN_CHARS);
        let (t, src) = AdminToken::load_or_create(Some(format!(" {long} ")), &dir).unwrap();
        assert_eq!((t.expose(), src), (long.as_str(), TokenSource::Env));
        assert!(!dir.join(TOKEN_FILE).exists());
        assert!(matches!(
            AdminToken::load_or_create(Some("  ".into()), &dir),
            Err(TokenError::EmptyEnv)
        ));
    }

    #[test]
    fn short_tokens_are_refused_naming_where_they_came_from() {
        let dir = temp_dir("short");
        let short = "a".repeat(MIN_TOKEN_CHARS - 1);
        match AdminToken::load_or_create(Some(short.clone()), &dir) {
            Err(TokenError::TooShort { setting, chars }) => {
                assert_eq!((setting.as_str(), chars), ("AURORA_ADMIN_TOKEN", 31))
            }
            other => panic!("{other:?}"),
        }
        fs::write(dir.join(TOKEN_FILE), format!("{short}\n")).unwrap();
        match AdminToken::load_or_create(None, &dir) {
            Err(TokenError::TooShort { setting, .. }) => {
                assert!(setting.ends_with(TOKEN_FILE), "{setting}")
            }
            other => panic!("{other:?}"),
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn generated_once_then_reused_with_owner_only_mode() {
        let dir = temp_dir("gen");
        let (first, src) = AdminToken::load_or_create(None, &dir).unwrap();
        assert_eq!(src, TokenSource::Generated(dir.join(TOKEN_FILE)));
        assert!(first.expose().len() > 64);
        let (second, src) = AdminToken::load_or_create(None, &dir).unwrap();
        assert_eq!(src, TokenSource::File(dir.join(TOKEN_FILE)));
        assert_eq!(first.expose(), second.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_hides_the_value() {
        assert!(!format!("{:?}", AdminToken::new("hunter2")).contains("hunter2"));
    }
}
