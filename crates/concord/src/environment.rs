//! The `CONCORD_*` environment variables this binary knows, and the check that refuses any
//! other. A misspelt key in the config file is an error; a misspelt variable
//! (`CONCORD_STORAGE_DURABLITY=buffered`, `CONCORD_ENDPIONT=...`) would otherwise be ignored
//! without a word, and the node (or the client) would run on a default the user did not want.
//!
//! Every command checks, before anything else: the server and the demo (whose nodes inherit
//! the environment) as much as the client commands.

use std::fmt::Write as _;

use concord_node::Config;

/// Variables the binary reads that are not config keys, with what they set.
pub const OWN: &[(&str, &str)] = &[
    ("CONCORD_CONFIG", "the TOML config file of `concord server` (as --config)"),
    ("CONCORD_LOG", "the log filter, e.g. debug [default: warn,concord=info]"),
    ("CONCORD_ENDPOINT", "the node the client commands talk to (as --endpoint)"),
];

/// Variables of this repository's tests and scripts, which start `concord` under them. A test
/// or script that reads a new one adds it here, or the servers it starts refuse to start.
const TOOLS: &[&str] = &[
    "CONCORD_TEST_SEED",
    "CONCORD_CRASH_CYCLES",
    "CONCORD_MOVE_KEYS",
    "CONCORD_AE_KEYS",
    "CONCORD_AE_INTERVAL_MS",
    "CONCORD_CHAOS_MODE",
    "CONCORD_BIN",
];

/// Refuses `CONCORD_*` names (of `names`) that nothing reads, naming the nearest known one.
pub fn check(names: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    let known = known_names();
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with("CONCORD_") && !known.contains(name))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    let mut message = String::new();
    for name in &unknown {
        let nearest = nearest(name, &known);
        let _ = writeln!(message, "unknown environment variable {name} (did you mean {nearest}?)");
    }
    let _ = write!(
        message,
        "Concord reads {} and CONCORD_<SECTION>_<KEY> for each config key (`concord server \
         --help` lists them); unset the variable or fix its name",
        OWN.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
    );
    anyhow::bail!(message)
}

/// Every name [`check`] accepts.
fn known_names() -> Vec<String> {
    let config = Config::keys().into_iter().map(|(_, env, _)| env);
    let own = OWN.iter().map(|(name, _)| (*name).to_owned());
    config.chain(own).chain(TOOLS.iter().map(|name| (*name).to_owned())).collect()
}

/// The known name closest to `name` by edit distance (the first of equals).
fn nearest<'a>(name: &str, known: &'a [String]) -> &'a str {
    known
        .iter()
        .min_by_key(|candidate| edit_distance(name, candidate))
        .map_or("(none)", String::as_str)
}

/// Levenshtein distance over bytes (the names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &y) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(x != y);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// The environment section of `concord server --help`: the binary's own variables, then one
/// line per config key with its default.
pub fn server_help() -> String {
    let mut text = String::from("Environment (a flag overrides its variable):\n");
    for (name, what) in OWN.iter().filter(|(name, _)| *name != "CONCORD_ENDPOINT") {
        let _ = writeln!(text, "  {name:<44} {what}");
    }
    for (key, env, default) in Config::keys() {
        let _ = writeln!(text, "  {env:<44} {key} [default: {default}]");
    }
    text.push_str("An unknown CONCORD_* variable is an error. README.md explains every key.");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    /// Known variables and other programs' variables pass; a typo is refused with its fix.
    #[test]
    fn an_unknown_concord_variable_is_refused_with_the_nearest_name() {
        let fine =
            names(&["CONCORD_STORAGE_DURABILITY", "CONCORD_LOG", "CONCORD_TEST_SEED", "PATH"]);
        assert!(check(fine).is_ok());
        let err = check(names(&["CONCORD_STORAGE_DURABLITY", "HOME"])).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "unknown environment variable CONCORD_STORAGE_DURABLITY (did you mean \
                 CONCORD_STORAGE_DURABILITY?)\n"
            ),
            "{err}"
        );
        let err = check(names(&["CONCORD_ENDPIONT"])).unwrap_err().to_string();
        assert!(err.contains("(did you mean CONCORD_ENDPOINT?)"), "{err}");
    }

    #[test]
    fn edit_distance_counts_single_byte_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("abc", "ab"), 1);
        assert_eq!(edit_distance("abc", "axc"), 1);
        assert_eq!(edit_distance("ENDPIONT", "ENDPOINT"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    /// `server --help` names every config key's variable.
    #[test]
    fn server_help_names_every_variable() {
        let help = server_help();
        for (_, env, _) in Config::keys() {
            assert!(help.contains(&env), "{env} missing");
        }
        assert!(help.contains("CONCORD_CONFIG") && help.contains("CONCORD_LOG"));
    }
}
