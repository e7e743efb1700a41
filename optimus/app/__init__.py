"""The Streamlit app (`streamlit run app.py`): thin pages over the library.

* `pages/`: one module per page (widgets, one library call, a chart);
* `common`: what every page shares (model choice, cached loaders); `query`: the view in the
  URL; `guard`: the Host allow-list;
* `charts`, `charts_continual`: Altair specs, testable without a browser; `overlays`: a model's
  outputs counted into another table's bins.
"""
