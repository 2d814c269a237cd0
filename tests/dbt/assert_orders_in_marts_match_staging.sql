{#-
    Every current order up to as_of_date is in marts.orders, and nothing else is: the mart neither
    drops nor invents orders. The two sides are joined only when their fingerprints differ
    (values_may_differ, macros/reconciliation.sql): the join then names the orders.
-#}
with

expected as {{ inline_cte() }} (

    select order_id
    from {{ ref('stg_shop__orders') }}
    where cast(ordered_at as date) <= {{ as_of_date() }}

),

actual as {{ inline_cte() }} (

    select order_id from {{ ref('orders') }}

),

fingerprints as (

    {{ values_may_differ('expected', 'actual', 'order_id') }}

),

expected_to_compare as (

    select expected.order_id
    from expected
    where (select fingerprints.may_differ from fingerprints)

),

actual_to_compare as (

    select actual.order_id
    from actual
    where (select fingerprints.may_differ from fingerprints)

),

compared as (

    select
        coalesce(expected.order_id, actual.order_id) as order_id,
        case
            when actual.order_id is null then 'missing from marts.orders'
            when expected.order_id is null then 'not a current order up to as_of_date'
        end as problem
    from expected_to_compare as expected
    full outer join actual_to_compare as actual
        on expected.order_id = actual.order_id

)

select * from compared
where problem is not null
