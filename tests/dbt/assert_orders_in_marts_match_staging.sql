{#-
    Every current order up to as_of_date is in marts.orders, and nothing else is: the mart neither
    drops nor invents orders.
-#}
with

expected as (

    select order_id
    from {{ ref('stg_shop__orders') }}
    where cast(ordered_at as date) <= {{ as_of_date() }}

),

actual as (

    select order_id from {{ ref('orders') }}

),

compared as (

    select
        coalesce(expected.order_id, actual.order_id) as order_id,
        case
            when actual.order_id is null then 'missing from marts.orders'
            when expected.order_id is null then 'not a current order up to as_of_date'
        end as problem
    from expected
    full outer join actual
        on expected.order_id = actual.order_id

)

select * from compared
where problem is not null
