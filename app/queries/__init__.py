"""The dashboard's SQL, one module per domain the pages ask about (base: what every domain shares)."""
