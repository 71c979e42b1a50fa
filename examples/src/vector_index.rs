//! A flat vector index: texts with their unit-length embeddings, searched by
//! cosine similarity, saved as raw little-endian `f32` rows.

use std::io::{self, Read, Write};
use std::path::Path;

use batch_serving_ort::embedding::cosine_similarity;

/// Texts and their embeddings, in the same order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VectorIndex {
    /// The indexed texts.
    pub texts: Vec<String>,
    /// One vector per text, all of the same length.
    pub vectors: Vec<Vec<f32>>,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    /// The hit's position in the index.
    pub index: usize,
    /// Its text.
    pub text: &'a str,
    /// Cosine similarity to the query.
    pub score: f32,
}

impl VectorIndex {
    /// The `k` entries most similar to `query`, best first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Hit<'_>> {
        let mut hits: Vec<Hit<'_>> = self
            .vectors
            .iter()
            .zip(&self.texts)
            .enumerate()
            .map(|(index, (vector, text))| Hit {
                index,
                text,
                score: cosine_similarity(query, vector),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        hits
    }

    /// Writes the vectors as rows of little-endian `f32`, one row per text
    /// in index order (`rows × dimensions × 4` bytes, no header: the texts
    /// file gives the row count).
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write_vectors(&self, path: &Path) -> io::Result<()> {
        let mut out = io::BufWriter::new(std::fs::File::create(path)?);
        for value in self.vectors.iter().flatten() {
            out.write_all(&value.to_le_bytes())?;
        }
        out.flush()
    }

    /// Reads rows written by [`VectorIndex::write_vectors`].
    ///
    /// # Errors
    ///
    /// When the file cannot be read or its size is not a whole number of
    /// `dimensions`-long rows.
    pub fn read_vectors(path: &Path, dimensions: usize) -> io::Result<Vec<Vec<f32>>> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?.read_to_end(&mut bytes)?;
        let row_bytes = dimensions * 4;
        if row_bytes == 0 || bytes.len() % row_bytes != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} bytes is not a whole number of {dimensions}-float rows",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes
            .chunks_exact(row_bytes)
            .map(|row| {
                row.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn search_ranks_by_cosine_and_vectors_round_trip() {
        let index = VectorIndex {
            texts: vec!["east".into(), "north".into(), "north-east".into()],
            vectors: vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]],
        };
        let hits = index.search(&[0.0, 1.0], 2);
        assert_eq!(
            hits.iter().map(|h| h.text).collect::<Vec<_>>(),
            ["north", "north-east"]
        );
        assert!((hits[1].score - 0.8).abs() < 1e-6);

        let path = std::env::temp_dir().join(format!("vector-index-{}.f32", std::process::id()));
        index.write_vectors(&path).unwrap();
        assert_eq!(VectorIndex::read_vectors(&path, 2).unwrap(), index.vectors);
        assert!(VectorIndex::read_vectors(&path, 4).is_err());
        std::fs::remove_file(path).unwrap();
    }
}
