"""Reports and exports: what brokers, insurers, banks and credit managers pull out of Coverwatch."""
