"""The computations behind the app's pages: plain modules that never import streamlit."""
