//! `wsgi.file_wrapper` (PEP 3333 "Optional Platform-Specific File Handling").
//!
//! The worker sends a wrapped real file with `sendfile(2)`; for anything else (no
//! `fileno()`, not a regular file) the wrapper is an ordinary iterator of blocks.

use pyo3::prelude::*;

#[pyclass(module = "ferricorn", frozen)]
pub struct FileWrapper {
    /// The app's file: sent with `sendfile` when it has a regular file's descriptor, else
    /// read block by block.
    pub filelike: Py<PyAny>,
    /// How much each `read()` asks for when the file is iterated (PEP 3333's argument).
    pub block_size: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size = 8192))]
    fn new(filelike: Py<PyAny>, block_size: usize) -> FileWrapper {
        FileWrapper { filelike, block_size: block_size.max(1) }
    }

    #[getter]
    fn filelike(&self, py: Python<'_>) -> Py<PyAny> {
        self.filelike.clone_ref(py)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self.filelike.bind(py).call_method1("read", (self.block_size,))?;
        Ok((block.len()? > 0).then_some(block))
    }

    /// PEP 3333: closing the wrapper closes the file, if it can be closed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let file = self.filelike.bind(py);
        if file.hasattr("close")? {
            file.call_method0("close")?;
        }
        Ok(())
    }
}
