//! Every file in tests/fixtures/ is invalid and fails with the errors its comments announce:
//! one `# expect: PATH line N` line per expected error (`*` for any path). New fixtures are
//! picked up by iterating the directory.

use std::path::{Path, PathBuf};

use vipd_config::{Config, Diagnostic};

struct Expected {
    path: String,
    line: u64,
}

fn fixtures() -> Vec<PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("tests/fixtures is readable")
        .map(|entry| entry.expect("directory entry is readable").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    files.sort();
    files
}

fn expectations(text: &str) -> Vec<Expected> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# expect: "))
        .map(|expectation| {
            let (path, line) = expectation
                .rsplit_once(" line ")
                .unwrap_or_else(|| panic!("malformed expectation {expectation:?}"));
            Expected {
                path: path.trim().to_owned(),
                line: line.trim().parse().expect("the line is a number"),
            }
        })
        .collect()
}

fn render(errors: &[Diagnostic]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_broken_fixture_fails_with_the_expected_paths_and_lines() {
    let files = fixtures();
    assert!(files.len() >= 10, "fixtures missing: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected = expectations(&text);
        assert!(
            !expected.is_empty(),
            "{} announces no expected error",
            file.display()
        );
        let errors = match Config::from_yaml_str(&text) {
            Ok(_) => panic!("{} is valid, but is meant to fail", file.display()),
            Err(errors) => errors.0,
        };
        for expectation in &expected {
            let found = errors.iter().any(|error| {
                (expectation.path == "*" || error.path == expectation.path)
                    && error.line == expectation.line
            });
            assert!(
                found,
                "{}: no error at {} line {}; got:\n{}",
                file.display(),
                expectation.path,
                expectation.line,
                render(&errors)
            );
        }
        // Each fixture is about its announced errors: nothing unexpected on the side.
        assert_eq!(
            errors.len(),
            expected.len(),
            "{}: unexpected extra errors:\n{}",
            file.display(),
            render(&errors)
        );
    }
}
