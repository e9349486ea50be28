"""Tools around routes.toml that the CLI uses: the AsyncAPI document, ``vws init``'s scaffold,
and comment-preserving edits.
"""
