"""Search parameters: definitions (from contracts/search-parameters.json), extraction, query parsing."""
