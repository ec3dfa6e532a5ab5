"""
What this provider has stored, read from the metadata DB outside any task: the CLI's model.

A task reaches its state through the Execution API; a person on call has the metadata DB (the
``airflow`` CLI's own access). ``state.py`` lists, explains and deletes task instances' state,
``watermarks.py`` lists and resets watermarks; both read the documents with the codec the task
writes them with (``state/codec.py``).
"""
