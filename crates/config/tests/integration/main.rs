//! vipd-config's integration tests, linked as one executable: each former test file is a module,
//! so a test reads as `examples::the_two_nodes_of_a_pair_agree`.

mod broken_files;
mod examples;
mod hostile_input;
