"""longformer-lab's visualizer: `longformer-lab app` (or `streamlit run viz_app/app.py`). This file only declares
the pages; each page (viz_app/views/) wires its widgets to functions in viz_app/core/, which never import
streamlit; views/cache.py holds every cache. The folder is not called pages/: that name would switch on Streamlit's
older folder-based navigation."""

import streamlit as st

st.set_page_config(page_title="longformer-lab", layout="wide")
st.navigation([
    st.Page("views/explorer.py", title="Attention explorer", url_path="explorer", default=True),
    st.Page("views/patterns.py", title="Patterns", url_path="patterns"),
    st.Page("views/scaling.py", title="Complexity scaling", url_path="scaling"),
    st.Page("views/parity.py", title="Backend parity", url_path="parity"),
]).run()
