"""Teacher-driven sample generation: prompts, filters, the async engine and its bookkeeping."""
