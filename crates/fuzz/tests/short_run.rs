//! The fuzz targets' short run, on every `cargo test`: the committed corpus (`fuzz/corpus/<target>/`,
//! seeds and the inputs earlier long runs kept), then generated inputs — the seeds mutated
//! (bytes flipped, inserted, removed, cut short), arbitrary bytes, and for the renderers
//! Markdown-heavy text. The long coverage-guided runs are `cargo fuzz` (RELIABILITY.md).

use clawbridge_fuzz::TARGETS;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!inputs.is_empty(), "no seeds in {}", dir.display());
    inputs.sort();
    inputs
}

/// One edit of a seed.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Cut(usize),
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for edit in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match *edit {
            Edit::Flip(i, bit) if !out.is_empty() => {
                let i = at(i, out.len());
                out[i] ^= 1 << (bit % 8);
            }
            Edit::Insert(i, byte) => {
                let i = at(i, out.len() + 1);
                // Bytes that steer JSON and Markdown parsers into new states.
                const INTERESTING: &[u8] = b"{}[]\":,\\0-9eE.tfn*_`~#|>![]()\n \xff\xc3";
                out.insert(i, INTERESTING[usize::from(byte) % INTERESTING.len()]);
            }
            Edit::Remove(i) if !out.is_empty() => {
                let i = at(i, out.len());
                out.remove(i);
            }
            Edit::Cut(i) => {
                let i = at(i, out.len() + 1);
                out.truncate(i);
            }
            _ => {}
        }
    }
    out
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Cut),
    ]
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

#[test]
fn every_target_survives_its_corpus() {
    for (name, target) in TARGETS {
        for input in corpus(name) {
            target(&input);
        }
    }
}

#[test]
fn every_target_survives_mutated_seeds() {
    for (name, target) in TARGETS {
        let seeds = corpus(name);
        let strategy = (0..seeds.len(), proptest::collection::vec(edit(), 1..12));
        runner(400)
            .run(&strategy, |(seed, edits)| {
                target(&apply(&seeds[seed], &edits));
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn every_target_survives_arbitrary_bytes() {
    for (name, target) in TARGETS {
        runner(300)
            .run(&proptest::collection::vec(any::<u8>(), 0..2048), |bytes| {
                target(&bytes);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_renderers_survive_markdown_heavy_text() {
    let markdown = "[-#*_`~|>!\\[\\]()\\\\ \n\tA-Za-z0-9가-힣😀<>/:.=]{0,3000}";
    for (name, target) in TARGETS.iter().filter(|(name, _)| name.starts_with("render_")) {
        runner(500)
            .run(&markdown, |text| {
                target(text.as_bytes());
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
