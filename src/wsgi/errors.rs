//! `wsgi.errors`: text the app writes goes to the server's error log, as in gunicorn.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::log;

#[pyclass(module = "ferricorn", frozen)]
pub struct Errors;

#[pymethods]
impl Errors {
    fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(text) = data.cast::<PyString>() {
            log::write_raw(text.to_cow()?.as_bytes());
        } else if let Ok(bytes) = data.cast::<PyBytes>() {
            log::write_raw(bytes.as_bytes());
        } else {
            return Err(PyTypeError::new_err("wsgi.errors.write() takes a str"));
        }
        Ok(())
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    /// Every write is already unbuffered.
    fn flush(&self) {}
}
