//! kiln-solver: a parsed Dockerfile plus build args to a DAG of small
//! operations (image source, exec, file op, metadata), only what the target
//! needs. Each vertex gets a content-addressed cache key (blake3 of its
//! definition, its inputs' keys and the content of the files it reads), and
//! ready vertices run in parallel.
//!
//! Nothing lives here yet: the solver issue fills it in.
