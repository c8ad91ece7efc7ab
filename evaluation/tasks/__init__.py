"""Evaluation tasks: their YAML declarations (beside this file), suites, data, and the code that reads them.

- ``spec``: a task's declaration (``TaskSpec``) and its loaded items (``LoadedTask``);
- ``registry``: every task and suite, read from ``*.yaml`` here and in ``suites/``;
- ``sources``, ``builders``: where a task's items come from (project files in ``data/``, installed packages);
- ``templates``: how an item becomes a conversation;
- ``sampling``: which items a cycle serves and which it holds out;
- ``taxonomy``: the harm categories items are tagged with.
"""
