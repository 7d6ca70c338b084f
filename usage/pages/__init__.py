"""The customer usage pages: the usage page and its CSV export, with their forms, presentation
(cards, tables, charts) and routes."""
