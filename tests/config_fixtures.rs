//! Every file under tests/fixtures/good, and config/example.toml, loads; every file under
//! tests/fixtures/bad is refused with the error its first line expects.

use std::fs;
use std::path::Path;

use route53_agent::config::Config;

fn fixtures(kind: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("fixtures folder")
        .map(|entry| entry.expect("fixture entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn good_fixtures_and_the_shipped_example_load() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    for path in fixtures("good").into_iter().chain([example]) {
        if let Err(error) = Config::load(&path) {
            panic!("{} should load: {error:?}", path.display());
        }
    }
}

#[test]
fn bad_fixtures_are_refused_with_the_expected_error() {
    for path in fixtures("bad") {
        let text = fs::read_to_string(&path).expect("fixture text");
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks an `# expect:` line", path.display()));
        let error = Config::load(&path).expect_err("a bad fixture must be refused");
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert!(message.contains(expected), "{}: {message}", path.display());
        assert!(
            message.contains(&path.display().to_string()),
            "error names the file: {message}"
        );
    }
}
