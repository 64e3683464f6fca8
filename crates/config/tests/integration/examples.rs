//! Every example configuration under deploy/examples/ is valid and draws no warning, and the
//! two files of a pair (NAME-lb1.yaml / NAME-lb2.yaml) agree on what the two nodes share.

use std::path::{Path, PathBuf};

use vipd_config::{Config, load};

fn examples_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples")
}

/// Every `.yaml` file under `directory`, subdirectories included, sorted.
fn yaml_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).expect("deploy/examples is readable") {
        let path = entry.expect("directory entry is readable").path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml")
        {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn every_example_is_valid_without_warnings() {
    let files = yaml_files(&examples_directory());
    assert!(files.len() >= 4, "examples missing: {files:?}");
    for file in files {
        match load(&file) {
            Ok((_, warnings)) => assert!(
                warnings.is_empty(),
                "{} draws warnings:\n{}",
                file.display(),
                warnings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            Err(error) => panic!("{error}"),
        }
    }
}

#[test]
fn the_two_nodes_of_a_pair_agree() {
    let files = yaml_files(&examples_directory());
    let mut pairs = 0;
    for lb1_file in files
        .iter()
        .filter(|file| file.to_string_lossy().ends_with("-lb1.yaml"))
    {
        let lb2_file = PathBuf::from(lb1_file.to_string_lossy().replace("-lb1.yaml", "-lb2.yaml"));
        let (lb1, _) = load(lb1_file).unwrap();
        let (lb2, _) = load(&lb2_file).unwrap();
        assert_pair(&lb1, &lb2, lb1_file);
        pairs += 1;
    }
    assert!(
        pairs >= 2,
        "expected the active-standby and active-active pairs"
    );
}

fn assert_pair(lb1: &Config, lb2: &Config, file: &Path) {
    let context = file.display();
    assert_ne!(lb1.node, lb2.node, "{context}: both nodes have one name");
    assert_eq!(lb1.vrrp.len(), lb2.vrrp.len(), "{context}");
    for mine in &lb1.vrrp {
        let theirs = lb2
            .instance(&mine.name)
            .unwrap_or_else(|| panic!("{context}: lb2 lacks instance {}", mine.name));
        assert_eq!(mine.vrid, theirs.vrid, "{context}: {}", mine.name);
        assert_eq!(mine.vips, theirs.vips, "{context}: {}", mine.name);
        assert_eq!(mine.version, theirs.version, "{context}: {}", mine.name);
        assert_eq!(
            mine.advert_interval, theirs.advert_interval,
            "{context}: {}",
            mine.name
        );
        assert_eq!(
            mine.peer_priority,
            Some(theirs.priority),
            "{context}: {}",
            mine.name
        );
        assert_eq!(
            theirs.peer_priority,
            Some(mine.priority),
            "{context}: {}",
            mine.name
        );
        assert_ne!(
            mine.priority, theirs.priority,
            "{context}: {} needs a preferred master",
            mine.name
        );
    }
    // The proxy is the same on both nodes: whichever holds a VIP serves it the same way.
    assert_eq!(lb1.frontends, lb2.frontends, "{context}");
    assert_eq!(lb1.backends, lb2.backends, "{context}");
}
