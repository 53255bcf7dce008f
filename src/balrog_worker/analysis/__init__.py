"""From JSONL records to BALROG's statistics, tables and figures."""
